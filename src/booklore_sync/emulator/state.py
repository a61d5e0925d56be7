"""The emulator's state (booklore-api.md §7.2): one lock, plain JSON-friendly records,
seeding, persistence, tokens, the login limiter, faults and the request log.

Records use the wire's camelCase field names, so a dump reads like the API.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import secrets
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from . import jwt
from .clock import Clock
from .faults import FaultRule, FaultTable
from .wire import Malformed, format_instant, format_local, parse_instant

BOOK_TYPES = ("PDF", "EPUB", "CBX", "FB2", "MOBI", "AZW3", "AUDIOBOOK")
MODES = ("fork", "upstream", "fork-2675")
READ_STATUSES = (
    "UNREAD", "READING", "RE_READING", "READ", "PARTIALLY_READ", "PAUSED", "WONT_READ",
    "ABANDONED", "UNSET",
)
_EXT_BY_TYPE = {"PDF": "pdf", "EPUB": "epub", "CBX": "cbz", "FB2": "fb2", "MOBI": "mobi",
                "AZW3": "azw3", "AUDIOBOOK": "m4b"}
META_KEYS = (
    "title", "subtitle", "authors", "publisher", "publishedDate", "description", "language",
    "pageCount", "seriesName", "seriesNumber", "seriesTotal", "isbn13", "isbn10",
    "categories", "tags", "moods", "asin", "goodreadsId", "hardcoverId", "hardcoverBookId",
    "googleId",
)
# id-keyed tables, in dump order
TABLES = ("users", "koreaderAccounts", "libraries", "books", "sessions", "annotations",
          "notesV2", "bookNotes", "bookmarks", "shelves")
ACCESS_TTL = 36_000  # 10 hours
REFRESH_TTL = 30 * 24 * 3600
LIMIT_FAILURES = 5
LIMIT_WINDOW = 15 * 60
LOG_LIMIT = 200_000
_SECRET_KEYS = {"password", "refreshtoken", "accesstoken", "token", "key", "x-auth-key"}


class SeedError(ValueError):
    pass


def md5_hex(text: str) -> str:
    return hashlib.md5(text.encode("utf-8")).hexdigest()


def _empty_data() -> dict[str, Any]:
    data: dict[str, Any] = {name: {} for name in TABLES}
    data["progress"] = {}
    data["bookFiles"] = 0
    data["nextIds"] = {name: 1 for name in TABLES}
    data["nextIds"]["bookFiles"] = 1
    data["oidcOnly"] = False
    return data


def _redact(value: Any, depth: int = 0) -> Any:
    if depth > 3:
        return value
    if isinstance(value, dict):
        if not any(str(k).lower() in _SECRET_KEYS for k in value) and depth > 0:
            return value
        return {
            k: ("***" if str(k).lower() in _SECRET_KEYS and v is not None else _redact(v, depth + 1))
            for k, v in value.items()
        }
    return value


class State:
    """Everything the emulator knows.  ``lock`` guards all of it; each request runs with
    the lock held, so each request is atomic."""

    def __init__(
        self,
        *,
        mode: str = "fork",
        user: tuple[str, str] | None = ("demo", "demo"),
        koreader_user: tuple[str, str] | None = ("demo", "demo"),
        admin: tuple[str, str] | None = ("admin", "admin"),
        library: str | os.PathLike[str] | None = None,
        seed: dict[str, Any] | str | os.PathLike[str] | None = None,
        books: Iterable[dict[str, Any]] | None = None,
        state_file: str | os.PathLike[str] | None = None,
        bug_compat: bool = True,
        spa_fallback: bool = True,
        access_token_ttl: int = ACCESS_TTL,
        refresh_token_ttl: int = REFRESH_TTL,
        version: str = "v1.17.0-emulator",
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}")
        self.lock = threading.RLock()
        self.clock = Clock()
        self.faults = FaultTable()
        self.mode = mode
        self.bug_compat = bug_compat
        self.spa_fallback = spa_fallback
        self.access_token_ttl = int(access_token_ttl)
        self.refresh_token_ttl = int(refresh_token_ttl)
        self.version = version
        self.accounts = {"user": user, "koreader_user": koreader_user, "admin": admin}
        self.secret = secrets.token_bytes(32)
        self.state_file = Path(state_file) if state_file else None
        # tokens and limiter are runtime-only (refresh tokens persist)
        self.refresh_tokens: dict[str, dict[str, Any]] = {}
        self.issued_access: list[str] = []
        self.expired_tokens: set[str] = set()
        self.broken_tokens: set[str] = set()
        self.limiter: dict[tuple[str, str], list[float]] = {}
        self.log: list[dict[str, Any]] = []
        self.log_seq = 0
        self.dirty = False
        self._save_lock = threading.Lock()
        self._unique: dict[str, dict[tuple[int, int, str], int]] = {}

        seed_obj = _load_seed(seed)
        library_books = []
        if library is not None:
            from .library import scan_library

            library_books = scan_library(library)
        self.data = _empty_data()
        self._apply_seed(seed_obj or {}, extra_books=library_books, tail_books=list(books or []))
        self.seed_data = copy.deepcopy(self.data)
        if self.state_file and self.state_file.exists():
            self._load_file(self.state_file)
        elif self.state_file:
            self.save()

    # ------------------------------------------------------------------ seeding

    def _next_id(self, table: str, wanted: Any = None) -> int:
        ids = self.data["nextIds"]
        if wanted is not None:
            wanted = int(wanted)
            ids[table] = max(ids[table], wanted + 1)
            return wanted
        value = ids[table]
        ids[table] = value + 1
        return value

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
            row = self.progress_row(self._user_ref(p), int(p["bookId"]), create=True)
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
            "syncEnabled": bool(acc.get("syncEnabled", True)),
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
            for key, default in (("cfi", None), ("positionMs", None), ("trackIndex", None),
                                 ("title", None), ("color", None), ("notes", None), ("priority", 3)):
                rec.setdefault(key, default)
        self.data[table][iid] = rec

    # ------------------------------------------------------------------ lookups

    def find_user(self, username: str) -> dict[str, Any] | None:
        low = username.lower()
        for u in self.data["users"].values():
            if u["username"].lower() == low:
                return u
        return None

    def find_koreader(self, username: str) -> dict[str, Any] | None:
        low = username.lower()
        for acc in self.data["koreaderAccounts"].values():
            if acc["username"].lower() == low:
                return acc
        return None

    def live_book(self, book_id: int) -> dict[str, Any] | None:
        book = self.data["books"].get(book_id)
        if book is None or book["deleted"]:
            return None
        return book

    def books_by_hash(self, digest: str) -> list[dict[str, Any]]:
        low = digest.lower()
        found = []
        for book in self.data["books"].values():
            if book["deleted"]:
                continue
            for f in book["files"]:
                if f["isBook"] and f["currentHash"] and f["currentHash"].lower() == low:
                    found.append(book)
                    break
        return found

    def can_access(self, user: dict[str, Any], book: dict[str, Any]) -> bool:
        return user["isAdmin"] or book["libraryId"] in user["libraryIds"]

    def progress_row(self, user_id: int, book_id: int, create: bool = False) -> dict[str, Any] | None:
        key = (int(user_id), int(book_id))
        row = self.data["progress"].get(key)
        if row is None and create:
            row = {
                "userId": key[0], "bookId": key[1], "personalRating": None, "readStatus": None,
                "dateFinished": None, "lastReadTime": None, "koreaderProgress": None,
                "koreaderPercent": None, "koreaderDevice": None, "koreaderDeviceId": None,
                "koreaderLastSyncTime": None,
            }
            self.data["progress"][key] = row
        return row

    # ------------------------------------------------------------------ UNIQUE(user, book, cfi)

    @staticmethod
    def cfi_key(cfi: str) -> str:
        # MariaDB's default collation: case-insensitive, trailing spaces ignored
        return cfi.rstrip(" ").lower()

    def _unique_index(self, table: str) -> dict[tuple[int, int, str], int]:
        idx = self._unique.get(table)
        if idx is None:
            idx = {}
            for rec in self.data[table].values():
                if rec.get("cfi") is not None:
                    idx[(rec["userId"], rec["bookId"], self.cfi_key(rec["cfi"]))] = rec["id"]
            self._unique[table] = idx
        return idx

    def unique_exists(self, table: str, user_id: int, book_id: int, cfi: str) -> bool:
        return (user_id, book_id, self.cfi_key(cfi)) in self._unique_index(table)

    def unique_add(self, table: str, rec: dict[str, Any]) -> None:
        if rec.get("cfi") is not None:
            self._unique_index(table)[(rec["userId"], rec["bookId"], self.cfi_key(rec["cfi"]))] = rec["id"]

    def invalidate(self) -> None:
        """Forget derived indexes (after any change not made through ``unique_add``)."""
        self._unique.clear()

    # ------------------------------------------------------------------ tokens

    def token_for(self, claims: dict[str, Any]) -> str:
        return jwt.encode(claims, self.secret)

    def access_user(self, token: str) -> dict[str, Any] | None:
        """The user of a valid access token, else None (→ 401 empty)."""
        if token in self.broken_tokens or token in self.expired_tokens:
            return None
        claims = jwt.verify_signature(token, self.secret)
        if not claims or claims.get("tokenType") == "refresh":
            return None
        exp = claims.get("exp")
        if not isinstance(exp, (int, float)) or exp <= self.clock.time():
            return None
        user = self.data["users"].get(claims.get("userId"))
        if user is None or user["username"] != claims.get("sub"):
            return None
        return user

    def limited(self, key: tuple[str, str]) -> bool:
        rec = self.limiter.get(key)
        if rec is None:
            return False
        if self.clock.time() >= rec[1] + LIMIT_WINDOW:
            del self.limiter[key]
            return False
        return rec[0] >= LIMIT_FAILURES

    def fail(self, key: tuple[str, str]) -> None:
        now = self.clock.time()
        rec = self.limiter.get(key)
        if rec is None or now >= rec[1] + LIMIT_WINDOW:
            self.limiter[key] = [1, now]
        else:
            rec[0] += 1

    # ------------------------------------------------------------------ request log

    def record(self, entry: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            self.log_seq += 1
            entry["seq"] = self.log_seq
            if entry.get("body") is not None:
                entry["body"] = _redact(entry["body"])
            self.log.append(entry)
            if len(self.log) > LOG_LIMIT:
                del self.log[: len(self.log) - LOG_LIMIT]
            return entry

    # ------------------------------------------------------------------ persistence

    def to_json(self, include_secrets: bool = True) -> dict[str, Any]:
        with self.lock:
            out: dict[str, Any] = {"format": "booklore-emulator-state", "version": 1}
            for table in TABLES:
                out[table] = [copy.deepcopy(r) for _k, r in sorted(self.data[table].items())]
            out["progress"] = [copy.deepcopy(r) for _k, r in sorted(self.data["progress"].items())]
            out["oidcOnly"] = self.data["oidcOnly"]
            out["nextIds"] = dict(self.data["nextIds"])
            if include_secrets:
                out["secret"] = self.secret.hex()
                out["refreshTokens"] = [dict(v, token=k) for k, v in self.refresh_tokens.items()]
            return out

    def _from_json(self, obj: dict[str, Any]) -> None:
        data = _empty_data()
        for table in TABLES:
            for rec in obj.get(table) or []:
                data[table][int(rec["id"])] = rec
        for row in obj.get("progress") or []:
            data["progress"][(int(row["userId"]), int(row["bookId"]))] = row
        data["oidcOnly"] = bool(obj.get("oidcOnly", False))
        data["nextIds"].update({k: int(v) for k, v in (obj.get("nextIds") or {}).items()})
        for table in TABLES:
            if data[table]:
                data["nextIds"][table] = max(data["nextIds"][table], max(data[table]) + 1)
        file_ids = [f["id"] for b in data["books"].values() for f in b["files"]]
        if file_ids:
            data["nextIds"]["bookFiles"] = max(data["nextIds"]["bookFiles"], max(file_ids) + 1)
        self.data = data
        self.invalidate()
        if obj.get("secret"):
            self.secret = bytes.fromhex(obj["secret"])
        self.refresh_tokens = {}
        for rec in obj.get("refreshTokens") or []:
            rec = dict(rec)
            token = rec.pop("token")
            self.refresh_tokens[token] = rec

    def _load_file(self, path: Path) -> None:
        try:
            obj = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise SeedError(f"cannot read state file {path}: {exc}") from exc
        if not isinstance(obj, dict) or obj.get("format") != "booklore-emulator-state":
            raise SeedError(f"{path} is not an emulator state file")
        self._from_json(obj)

    def save(self) -> None:
        """Write the snapshot (atomically) when a state file is configured."""
        if not self.state_file:
            return
        with self._save_lock:
            with self.lock:
                snapshot = self.to_json()
                self.dirty = False
            tmp = self.state_file.with_name(self.state_file.name + ".tmp")
            self.state_file.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "w", encoding="utf-8") as fh:
                json.dump(snapshot, fh, separators=(",", ":"))
            os.replace(tmp, self.state_file)

    def mark_dirty(self) -> None:
        self.dirty = True

    # ================================================================== test helpers
    # Thread-safe copies; none of them goes through HTTP.

    def _table(self, table: str, book_id: int | None = None, user_id: int | None = None) -> list[dict[str, Any]]:
        with self.lock:
            rows = [r for _k, r in sorted(self.data[table].items())]
            if book_id is not None:
                rows = [r for r in rows if r.get("bookId") == book_id]
            if user_id is not None:
                rows = [r for r in rows if r.get("userId") == user_id]
            return copy.deepcopy(rows)

    def sessions(self, book_id: int | None = None, user_id: int | None = None) -> list[dict[str, Any]]:
        return self._table("sessions", book_id, user_id)

    def annotations(self, book_id: int | None = None, user_id: int | None = None) -> list[dict[str, Any]]:
        return self._table("annotations", book_id, user_id)

    def notes_v2(self, book_id: int | None = None, user_id: int | None = None) -> list[dict[str, Any]]:
        return self._table("notesV2", book_id, user_id)

    def book_notes(self, book_id: int | None = None, user_id: int | None = None) -> list[dict[str, Any]]:
        """v1 book notes (``/api/v1/book-notes``)."""
        return self._table("bookNotes", book_id, user_id)

    def bookmarks(self, book_id: int | None = None, user_id: int | None = None) -> list[dict[str, Any]]:
        return self._table("bookmarks", book_id, user_id)

    def shelves(self) -> list[dict[str, Any]]:
        return self._table("shelves")

    def users(self) -> list[dict[str, Any]]:
        return self._table("users")

    def koreader_accounts(self) -> list[dict[str, Any]]:
        return self._table("koreaderAccounts")

    def libraries(self) -> list[dict[str, Any]]:
        return self._table("libraries")

    def books(self) -> list[dict[str, Any]]:
        return self._table("books")

    def book(self, book_id: int) -> dict[str, Any] | None:
        with self.lock:
            return copy.deepcopy(self.data["books"].get(book_id))

    def progress(self, book_id: int | None = None, user_id: int | None = None) -> list[dict[str, Any]]:
        with self.lock:
            rows = [r for _k, r in sorted(self.data["progress"].items())]
            if book_id is not None:
                rows = [r for r in rows if r["bookId"] == book_id]
            if user_id is not None:
                rows = [r for r in rows if r["userId"] == user_id]
            return copy.deepcopy(rows)

    def ratings(self) -> list[dict[str, Any]]:
        """``{"userId", "bookId", "personalRating"}`` for every progress row with a rating."""
        with self.lock:
            return [
                {"userId": r["userId"], "bookId": r["bookId"], "personalRating": r["personalRating"]}
                for _k, r in sorted(self.data["progress"].items())
                if r.get("personalRating") is not None
            ]

    def dump(self) -> dict[str, Any]:
        """The whole state as JSON (what ``GET /__emulator/state`` returns)."""
        out = self.to_json(include_secrets=False)
        out.pop("format", None)
        out.pop("version", None)
        out["ratings"] = self.ratings()
        out["mode"] = self.mode
        out["config"] = self.config()
        out["clock"] = self.clock.describe()
        return out

    def config(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "bug_compat": self.bug_compat,
            "spa_fallback": self.spa_fallback,
            "oidc_only": self.data["oidcOnly"],
            "access_token_ttl": self.access_token_ttl,
            "refresh_token_ttl": self.refresh_token_ttl,
        }

    def configure(self, bug_compat: bool | None = None, spa_fallback: bool | None = None,
                  oidc_only: bool | None = None, access_token_ttl: int | None = None,
                  refresh_token_ttl: int | None = None, mode: str | None = None) -> dict[str, Any]:
        with self.lock:
            if mode is not None:
                self.set_mode(mode)
            if bug_compat is not None:
                self.bug_compat = bool(bug_compat)
            if spa_fallback is not None:
                self.spa_fallback = bool(spa_fallback)
            if oidc_only is not None:
                self.data["oidcOnly"] = bool(oidc_only)
            if access_token_ttl is not None:
                self.access_token_ttl = int(access_token_ttl)
            if refresh_token_ttl is not None:
                self.refresh_token_ttl = int(refresh_token_ttl)
            return self.config()

    def set_mode(self, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}")
        with self.lock:
            self.mode = mode

    def add_book(
        self,
        title: str | None = None,
        authors: list[str] | str | None = None,
        isbn13: str | None = None,
        isbn10: str | None = None,
        file_hash: str | None = None,
        book_type: str = "EPUB",
        *,
        id: int | None = None,  # noqa: A002 - the wire's name
        library_id: int = 1,
        file_name: str | None = None,
        initial_hash: str | None = None,
        files: list[dict[str, Any]] | None = None,
        deleted: bool = False,
        metadata: dict[str, Any] | None = None,
        **extra_metadata: Any,
    ) -> dict[str, Any]:
        """Add one book without a file on disk.  ``files`` (seed format) replaces the single
        primary file made from ``file_hash``/``book_type``; ``files=[]`` gives a book
        without any file.  Extra keyword arguments are metadata fields
        (``description``, ``publisher``, …).  Returns the stored record (with ``id``)."""
        entry: dict[str, Any] = {"metadata": dict(metadata or {}), "libraryId": library_id,
                                 "deleted": deleted, "bookType": book_type}
        if title is not None:
            entry["metadata"]["title"] = title
        if authors is not None:
            entry["metadata"]["authors"] = authors
        if isbn13 is not None:
            entry["metadata"]["isbn13"] = isbn13
        if isbn10 is not None:
            entry["metadata"]["isbn10"] = isbn10
        entry["metadata"].update(extra_metadata)
        if id is not None:
            entry["id"] = id
        if files is not None:
            entry["files"] = files
        else:
            entry["hash"] = file_hash
            if initial_hash is not None:
                entry["initialHash"] = initial_hash
            if file_name is not None:
                entry["fileName"] = file_name
        return self.add_book_entry(entry)

    def add_book_entry(self, entry: dict[str, Any]) -> dict[str, Any]:
        """Add a book given as a seed entry (``POST /__emulator/books``)."""
        with self.lock:
            rec = self._add_book(entry)
            self.mark_dirty()
            return copy.deepcopy(rec)

    def update_book(self, book_id: int, **changes: Any) -> dict[str, Any]:
        """Change a stored book: ``metadata`` keys (merged), ``deleted``, ``libraryId``,
        or ``currentHash`` (of the primary file, to simulate hash drift)."""
        with self.lock:
            book = self.data["books"][book_id]
            for key, value in changes.items():
                if key == "metadata":
                    book["metadata"].update(value)
                elif key in META_KEYS:
                    book["metadata"][key] = value
                elif key == "currentHash":
                    for f in book["files"]:
                        if f["primary"]:
                            f["currentHash"] = value
                elif key in ("deleted", "libraryId", "coverHash"):
                    book[key] = value
                else:
                    raise KeyError(key)
            self.mark_dirty()
            return copy.deepcopy(book)

    def set_koreader_account(self, username: str, **changes: Any) -> dict[str, Any]:
        """Change a KOReader account: ``syncEnabled``, ``syncWithBookloreReader``,
        ``userId`` (None = not linked), ``password``."""
        with self.lock:
            acc = self.find_koreader(username)
            if acc is None:
                raise KeyError(username)
            for key, value in changes.items():
                if key == "password":
                    acc["password"] = value
                    acc["md5"] = md5_hex(value)
                elif key in ("syncEnabled", "syncWithBookloreReader", "userId", "username"):
                    acc[key] = value
                else:
                    raise KeyError(key)
            self.mark_dirty()
            return copy.deepcopy(acc)

    def set_user(self, username: str, **changes: Any) -> dict[str, Any]:
        """Change a BookLore user: ``password``, ``isAdmin``, ``libraryIds``,
        ``canSyncKoReader``, ``isDefaultPassword``."""
        with self.lock:
            user = self.find_user(username)
            if user is None:
                raise KeyError(username)
            for key, value in changes.items():
                if key not in ("password", "isAdmin", "libraryIds", "canSyncKoReader",
                               "isDefaultPassword", "username"):
                    raise KeyError(key)
                user[key] = value
            self.mark_dirty()
            return copy.deepcopy(user)

    def delete_user(self, username: str) -> None:
        with self.lock:
            user = self.find_user(username)
            if user is None:
                raise KeyError(username)
            del self.data["users"][user["id"]]
            self.mark_dirty()

    def renumber(self, offset: int = 100) -> dict[str, int]:
        """Give every book the id ``old + offset`` (a rebuilt library); everything that
        refers to a book follows it."""
        offset = int(offset)
        with self.lock:
            books = self.data["books"]
            if offset < 0 and books and min(books) + offset < 1:
                raise ValueError("ids must stay positive")
            new_books = {}
            for bid, book in books.items():
                book["id"] = bid + offset
                new_books[bid + offset] = book
            self.data["books"] = new_books
            for table in ("sessions", "annotations", "notesV2", "bookNotes", "bookmarks"):
                for rec in self.data[table].values():
                    rec["bookId"] += offset
            self.data["progress"] = {
                (u, b + offset): dict(row, bookId=b + offset)
                for (u, b), row in self.data["progress"].items()
            }
            for shelf in self.data["shelves"].values():
                shelf["bookIds"] = [b + offset for b in shelf["bookIds"]]
            self.invalidate()
            if new_books:
                self.data["nextIds"]["books"] = max(self.data["nextIds"]["books"] + offset,
                                                    max(new_books) + 1)
            self.mark_dirty()
            return {"offset": offset, "books": len(new_books)}

    def reset(self) -> None:
        """Back to the seed state; clears faults, tokens, the limiter and the request log."""
        with self.lock:
            self.data = copy.deepcopy(self.seed_data)
            self.invalidate()
            self.refresh_tokens.clear()
            self.issued_access.clear()
            self.expired_tokens.clear()
            self.broken_tokens.clear()
            self.limiter.clear()
            self.log.clear()
            self.faults.clear()
            self.mark_dirty()

    def seed(self, seed: dict[str, Any] | str | os.PathLike[str]) -> None:
        """Replace the state with a JSON seed (§7.3); it becomes the new reset point."""
        obj = _load_seed(seed)
        with self.lock:
            old = self.data
            try:
                self._apply_seed(obj or {})
            except (SeedError, KeyError, TypeError, ValueError):
                self.data = old
                self.invalidate()
                raise
            self.seed_data = copy.deepcopy(self.data)
            self.refresh_tokens.clear()
            self.issued_access.clear()
            self.limiter.clear()
            self.mark_dirty()

    # faults
    def inject_fault(self, path: str | dict[str, Any], action: str | None = None,
                     **spec: Any) -> dict[str, Any]:
        """Add a fault rule (§7.7), e.g. ``inject_fault("/api/v1/reading-sessions/batch",
        "status", status=503, times=2)``, or ``inject_fault({...rule as JSON...})``.
        Returns the rule (with ``id`` and ``remaining``)."""
        if isinstance(path, dict):
            rule_spec = dict(path, **spec)
            if action is not None:
                rule_spec["action"] = action
        else:
            rule_spec = dict(spec, path=path, action=action or "status")
        rule: FaultRule = self.faults.add(rule_spec)
        return rule.to_json()

    def fault_rules(self) -> list[dict[str, Any]]:
        return self.faults.list()

    def remove_fault(self, rule_id: int) -> bool:
        return self.faults.remove(rule_id)

    def clear_faults(self) -> None:
        self.faults.clear()

    # request log
    def request_log(self, since: int = 0) -> list[dict[str, Any]]:
        with self.lock:
            return copy.deepcopy([e for e in self.log if e["seq"] > since])

    def clear_request_log(self) -> None:
        with self.lock:
            self.log.clear()

    # clock and tokens
    def set_clock(self, when: Any, frozen: bool = False) -> None:
        from .wire import parse_iso_datetime

        self.clock.set(parse_iso_datetime(when) if isinstance(when, str) else when, frozen)

    def advance_clock(self, seconds: float) -> None:
        self.clock.advance(seconds)

    def real_clock(self) -> None:
        self.clock.real()

    def expire_access_tokens(self) -> int:
        """Every access token issued so far now fails as expired (401, empty body)."""
        with self.lock:
            self.expired_tokens.update(self.issued_access)
            return len(self.issued_access)

    def expire_refresh_tokens(self) -> int:
        """Every refresh token issued so far is now expired (refresh → 400)."""
        with self.lock:
            for rec in self.refresh_tokens.values():
                rec["expiry"] = min(rec["expiry"], self.clock.time() - 1)
            return len(self.refresh_tokens)

    def break_signatures(self) -> int:
        """Every token issued so far now fails the signature check."""
        with self.lock:
            self.broken_tokens.update(self.issued_access)
            self.broken_tokens.update(self.refresh_tokens)
            return len(self.issued_access) + len(self.refresh_tokens)

    def expire_token(self, token: str) -> None:
        """Make one given token (access or refresh) fail as expired from now on."""
        with self.lock:
            self.expired_tokens.add(token)
            if token in self.refresh_tokens:
                self.refresh_tokens[token]["expiry"] = self.clock.time() - 1

    def break_token(self, token: str) -> None:
        """Make one given token fail the signature check from now on."""
        with self.lock:
            self.broken_tokens.add(token)


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
