"""Seeding the emulator's state: accounts, libraries, books and existing items from a JSON
seed (booklore-api.md §7.3)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..wire import Malformed, format_instant, format_local, parse_instant
from .base import _EXT_BY_TYPE, BOOK_TYPES, META_KEYS, SeedError, _empty_data, md5_hex
from .core import StateCore


class SeedMixin(StateCore):
    def _user_ref(self, entry: dict[str, Any]) -> int | None:
        if entry.get("userId") is not None:
            return int(entry["userId"])
        name = entry.get("user")
        if name is None:
            # default: the first non-admin user, else the first user
            users = sorted(self.data["users"].values(), key=lambda u: u["id"])
            for u in users:
                if not u["isAdmin"]:
                    return u["id"]
            return users[0]["id"] if users else None
        u = self.find_user(str(name))
        if u is None:
            raise SeedError(f"unknown user {name!r}")
        return u["id"]

    def _apply_seed(
        self,
        seed: dict[str, Any],
        extra_books: list[dict[str, Any]] | None = None,
        tail_books: list[dict[str, Any]] | None = None,
    ) -> None:
        if not isinstance(seed, dict):
            raise SeedError("a seed is a JSON object")
        self.invalidate()
        self.data = _empty_data()
        self.data["oidcOnly"] = bool(seed.get("oidcOnly", False))
        for lib in seed.get("libraries") or [{"id": 1, "name": "Library"}]:
            lid = self._next_id("libraries", lib.get("id"))
            self.data["libraries"][lid] = {"id": lid, "name": lib.get("name") or f"Library {lid}"}
        users = seed.get("users")
        if users is None:
            users = []
            if self.accounts["user"]:
                name, pw = self.accounts["user"]
                users.append({"username": name, "password": pw})
            if self.accounts["admin"]:
                name, pw = self.accounts["admin"]
                users.append({"username": name, "password": pw, "isAdmin": True})
        for u in users:
            self._add_user(u)
        accounts = seed.get("koreaderAccounts")
        if accounts is None:
            accounts = []
            if self.accounts["koreader_user"]:
                name, pw = self.accounts["koreader_user"]
                accounts.append({"username": name, "password": pw})
        for acc in accounts:
            self._add_koreader(acc)
        for entry in list(extra_books or []) + list(seed.get("books") or []) + list(tail_books or []):
            self._add_book(entry)
        for shelf in seed.get("shelves") or []:
            sid = self._next_id("shelves", shelf.get("id"))
            self.data["shelves"][sid] = {
                "id": sid, "userId": self._user_ref(shelf), "name": shelf.get("name", f"Shelf {sid}"),
                "icon": shelf.get("icon"), "iconType": shelf.get("iconType"),
                "publicShelf": bool(shelf.get("publicShelf", False)),
                "bookIds": [int(b) for b in shelf.get("bookIds") or []],
            }
        now = self.clock.now()
        for s in seed.get("sessions") or []:
            self._seed_session(s, now)
        for table in ("annotations", "notesV2", "bookNotes", "bookmarks"):
            for item in seed.get(table) or []:
                self._seed_item(table, item, now)
        for p in seed.get("progress") or []:
            uid = self._user_ref(p)
            if uid is None:
                raise SeedError("a progress row needs a user")
            row = self.progress_for(uid, int(p["bookId"]))
            for key, value in p.items():
                if key not in ("user", "userId", "bookId"):
                    row[key] = value

    def _add_user(self, u: dict[str, Any]) -> dict[str, Any]:
        uid = self._next_id("users", u.get("id"))
        is_admin = bool(u.get("isAdmin", False))
        rec = {
            "id": uid,
            "username": str(u["username"]),
            "password": str(u.get("password", "")),
            "isAdmin": is_admin,
            "libraryIds": [int(x) for x in u.get("libraryIds", [] if is_admin else [1])],
            "canSyncKoReader": bool(u.get("canSyncKoReader", True)),
            "isDefaultPassword": bool(u.get("isDefaultPassword", False)),
        }
        self.data["users"][uid] = rec
        return rec

    def _add_koreader(self, acc: dict[str, Any]) -> dict[str, Any]:
        kid = self._next_id("koreaderAccounts", acc.get("id"))
        if "userId" in acc:
            user_id = acc["userId"]
        elif acc.get("user") is not None:
            u = self.find_user(str(acc["user"]))
            if u is None:
                raise SeedError(f"unknown user {acc['user']!r}")
            user_id = u["id"]
        else:
            user_id = self._user_ref({})
        password = str(acc.get("password", ""))
        rec = {
            "id": kid,
            "username": str(acc["username"]),
            "password": password,
            "md5": acc.get("md5") or md5_hex(password),
            "syncEnabled": bool(acc.get("syncEnabled", self.koreader_sync)),
            "syncWithBookloreReader": bool(acc.get("syncWithBookloreReader", False)),
            "userId": int(user_id) if user_id is not None else None,
        }
        self.data["koreaderAccounts"][kid] = rec
        return rec

    def _add_book(self, entry: dict[str, Any]) -> dict[str, Any]:
        if not isinstance(entry, dict):
            raise SeedError("a book entry is a JSON object")
        meta = dict(entry.get("metadata") or {})
        for key in META_KEYS:
            if key in entry:
                meta[key] = entry[key]
        authors = meta.get("authors")
        if authors is None:
            meta["authors"] = []
        elif isinstance(authors, str):
            meta["authors"] = [authors]
        else:
            meta["authors"] = [str(a) for a in authors]
        bid = self._next_id("books", entry.get("id"))
        if bid in self.data["books"]:
            raise SeedError(f"book id {bid} already exists")
        files_in = entry.get("files")
        if files_in is None:
            digest = None
            for key in ("hash", "fileHash", "file_hash", "currentHash"):
                if entry.get(key):
                    digest = entry[key]
                    break
            btype = entry.get("bookType") or entry.get("book_type") or "EPUB"
            title = meta.get("title") or f"book-{bid}"
            file_name = entry.get("fileName") or f"{title}.{_EXT_BY_TYPE.get(btype, 'epub')}"
            files_in = [{
                "fileName": file_name, "bookType": btype, "currentHash": digest,
                "initialHash": entry.get("initialHash", digest), "isBook": True, "primary": True,
            }]
        files = []
        for f in files_in:
            btype = f.get("bookType", "EPUB")
            if btype not in BOOK_TYPES:
                raise SeedError(f"bookType must be one of {BOOK_TYPES}")
            fid = self._next_id("bookFiles", f.get("id"))
            name = f.get("fileName") or f"book-{bid}.{_EXT_BY_TYPE.get(btype, 'epub')}"
            current = f.get("currentHash", f.get("hash"))
            files.append({
                "id": fid,
                "fileName": name,
                "filePath": f.get("filePath") or f"/books/{name}",
                "fileSubPath": f.get("fileSubPath", ""),
                "bookType": btype,
                "isBook": bool(f.get("isBook", True)),
                "primary": bool(f.get("primary", False)),
                "currentHash": current,
                "initialHash": f.get("initialHash", current),
                "sizeKb": int(f.get("sizeKb") or 1024),
            })
        if files and not any(f["primary"] for f in files):
            for f in files:
                if f["isBook"]:
                    f["primary"] = True
                    break
        added = entry.get("addedOn")
        if added is None:
            added = format_instant(int(self.clock.time()))
        rec = {
            "id": bid,
            "libraryId": int(entry.get("libraryId", 1)),
            "deleted": bool(entry.get("deleted", False)),
            "addedOn": added,
            "coverHash": entry.get("coverHash") or md5_hex(f"cover:{bid}:{meta.get('title')}")[:20],
            "metadata": meta,
            "files": files,
        }
        self.data["books"][bid] = rec
        return rec

    def _seed_session(self, s: dict[str, Any], now: Any) -> None:
        sid = self._next_id("sessions", s.get("id"))
        try:
            start = parse_instant(s["startTime"]).truncated().iso()
            end = parse_instant(s["endTime"]).truncated().iso()
        except (KeyError, Malformed) as exc:
            raise SeedError("a seeded session needs startTime and endTime") from exc
        self.data["sessions"][sid] = {
            "id": sid, "userId": self._user_ref(s), "bookId": int(s["bookId"]),
            "bookType": s.get("bookType", "EPUB"), "startTime": start, "endTime": end,
            "durationSeconds": int(s.get("durationSeconds", 0)),
            "durationFormatted": s.get("durationFormatted"),
            "startProgress": s.get("startProgress"), "endProgress": s.get("endProgress"),
            "progressDelta": s.get("progressDelta"), "startLocation": s.get("startLocation"),
            "endLocation": s.get("endLocation"), "createdAt": s.get("createdAt") or format_local(now),
        }

    def _seed_item(self, table: str, item: dict[str, Any], now: Any) -> None:
        iid = self._next_id(table, item.get("id"))
        rec = {k: v for k, v in item.items() if k != "user"}
        rec["id"] = iid
        rec["userId"] = self._user_ref(item)
        rec["bookId"] = int(item["bookId"])
        stamp = format_local(now)
        rec.setdefault("createdAt", stamp)
        rec.setdefault("updatedAt", stamp)
        if table == "annotations":
            for key, default in (("cfi", None), ("text", None), ("color", "#FFFF00"),
                                 ("style", "highlight"), ("note", None), ("chapterTitle", None)):
                rec.setdefault(key, default)
        elif table == "notesV2":
            for key, default in (("cfi", None), ("selectedText", None), ("noteContent", None),
                                 ("color", "#FFC107"), ("chapterTitle", None)):
                rec.setdefault(key, default)
        elif table == "bookNotes":
            rec.setdefault("title", None)
            rec.setdefault("content", None)
        elif table == "bookmarks":
            bookmark_defaults: tuple[tuple[str, Any], ...] = (
                ("cfi", None), ("positionMs", None), ("trackIndex", None), ("title", None),
                ("color", None), ("notes", None), ("priority", 3), ("pageNumber", None))
            for key, default in bookmark_defaults:
                rec.setdefault(key, default)
        self.data[table][iid] = rec



def _load_seed(seed: dict[str, Any] | str | os.PathLike[str] | None) -> dict[str, Any] | None:
    if seed is None or isinstance(seed, dict):
        return seed
    path = Path(seed)
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SeedError(f"cannot read seed {path}: {exc}") from exc
    if not isinstance(obj, dict):
        raise SeedError("a seed is a JSON object")
    return obj

