"""The emulator clock (booklore-api.md §7.6).

One clock drives token ``iat``/``exp``, expiry checks, the login rate-limit window,
``createdAt``, kosync timestamps and ``addedOn``.  It is the wall clock shifted by an
offset (so a clock that was *set* keeps running from there), or frozen.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime, timezone


class Clock:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._offset = 0.0
        self._frozen: float | None = None

    def time(self) -> float:
        """Epoch seconds (float)."""
        with self._lock:
            if self._frozen is not None:
                return self._frozen
            return time.time() + self._offset

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.time(), tz=timezone.utc)

    def set(self, when: datetime | float, frozen: bool = False) -> None:
        target = when.timestamp() if isinstance(when, datetime) else float(when)
        with self._lock:
            if frozen:
                self._frozen = target
            else:
                self._frozen = None
                self._offset = target - time.time()

    def advance(self, seconds: float) -> None:
        with self._lock:
            if self._frozen is not None:
                self._frozen += seconds
            else:
                self._offset += seconds

    def real(self) -> None:
        with self._lock:
            self._offset = 0.0
            self._frozen = None

    def describe(self) -> dict:
        with self._lock:
            frozen = self._frozen is not None
            offset = self._offset
        return {"now": self.now().isoformat().replace("+00:00", "Z"), "frozen": frozen,
                "offset_seconds": 0.0 if frozen else offset}
