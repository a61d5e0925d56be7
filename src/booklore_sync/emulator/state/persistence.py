"""The ``--state FILE`` snapshot of the emulator (booklore-api.md §7.2)."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

from .base import TABLES, SeedError, _empty_data
from .core import StateCore


class PersistenceMixin(StateCore):
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

