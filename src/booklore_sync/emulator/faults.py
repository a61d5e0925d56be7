"""Fault rules (booklore-api.md §7.7)."""

from __future__ import annotations

import threading
from typing import Any

ACTIONS = (
    "status",
    "delay",
    "hang",
    "drop",
    "commit_then_drop",
    "commit_then_hang",
    "commit_then_status",
)
STATUS_ACTIONS = ("status", "commit_then_status")
_MISSING = object()


class FaultError(ValueError):
    pass


class FaultRule:
    """One rule.  ``deleted`` is set when the rule is removed (or the emulator stops), which
    releases the connections its hang actions hold."""

    def __init__(self, rule_id: int, spec: dict[str, Any]) -> None:
        if not isinstance(spec, dict):
            raise FaultError("a fault rule is a JSON object")
        action = spec.get("action", "status")
        if action not in ACTIONS:
            raise FaultError(f"unknown action {action!r}; one of {', '.join(ACTIONS)}")
        path = spec.get("path")
        if not isinstance(path, str) or not path.startswith("/"):
            raise FaultError("'path' must be an absolute path")
        match = spec.get("match", "exact")
        if match not in ("exact", "prefix"):
            raise FaultError("'match' is 'exact' or 'prefix'")
        times = spec.get("times", 1)
        if times is not None and (not isinstance(times, int) or times < 0):
            raise FaultError("'times' is a non-negative integer or null")
        skip = spec.get("skip", 0)
        if not isinstance(skip, int) or skip < 0:
            raise FaultError("'skip' is a non-negative integer")
        status = spec.get("status")
        if status is None:
            status = 502 if action == "commit_then_status" else 503
        if not isinstance(status, int) or not 100 <= status <= 599:
            raise FaultError("'status' is an HTTP status code")
        headers = spec.get("headers") or {}
        if not isinstance(headers, dict):
            raise FaultError("'headers' is an object")
        self.id, self.method = rule_id, str(spec.get("method", "*")).upper()
        self.path, self.match, self.skip = path, match, skip
        self.times = self.remaining = times
        self.action, self.status = action, status
        self.body = spec.get("body", _MISSING)
        self.headers = {str(k): str(v) for k, v in headers.items()}
        self.delay_ms = int(spec.get("delay_ms") or 0)
        hang_ms = spec.get("hang_ms")
        self.hang_ms = int(hang_ms) if hang_ms is not None else None
        self.reset = bool(spec.get("reset", False))
        self.hits = 0
        self.deleted = threading.Event()

    def matches(self, method: str, path: str) -> bool:
        if self.method not in ("*", method):
            return False
        if self.match == "exact":
            return path == self.path
        return path.startswith(self.path)

    def exhausted(self) -> bool:
        return self.remaining is not None and self.remaining <= 0

    @property
    def has_body(self) -> bool:
        return self.body is not _MISSING

    def to_json(self) -> dict[str, Any]:
        out = {
            "id": self.id,
            "method": self.method,
            "path": self.path,
            "match": self.match,
            "skip": self.skip,
            "times": self.times,
            "remaining": self.remaining,
            "hits": self.hits,
            "action": self.action,
            "status": self.status,
            "headers": self.headers,
            "delay_ms": self.delay_ms,
            "hang_ms": self.hang_ms,
            "reset": self.reset,
        }
        if self.has_body:
            out["body"] = self.body
        return out


class FaultTable:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = []
        self._next_id = 1

    def add(self, spec: dict[str, Any]) -> FaultRule:
        with self._lock:
            rule = FaultRule(self._next_id, spec)
            self._next_id += 1
            self._rules.append(rule)
            return rule

    def list(self) -> list[dict[str, Any]]:
        with self._lock:
            return [r.to_json() for r in self._rules]

    def remove(self, rule_id: int) -> bool:
        with self._lock:
            for rule in self._rules:
                if rule.id == rule_id:
                    self._rules.remove(rule)
                    rule.deleted.set()
                    return True
            return False

    def clear(self) -> None:
        with self._lock:
            for rule in self._rules:
                rule.deleted.set()
            self._rules.clear()

    def take(self, method: str, path: str) -> FaultRule | None:
        """The rule that applies to this request (its count is consumed), or None.
        A rule still skipping lets the request through untouched."""
        with self._lock:
            for rule in self._rules:
                if rule.exhausted() or not rule.matches(method, path):
                    continue
                if rule.skip > 0:
                    rule.skip -= 1
                    return None
                if rule.remaining is not None:
                    rule.remaining -= 1
                rule.hits += 1
                return rule
            return None
