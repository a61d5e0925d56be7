"""Wire-level helpers of the emulator: times, numbers and JSON the way BookLore
(Java / Jackson / MariaDB) puts them on the wire (booklore-api.md §1.3, §1.4)."""

from __future__ import annotations

import calendar
import json
import math
import re
import struct
from datetime import datetime, timezone
from typing import Any

INT_MIN, INT_MAX = -(2**31), 2**31 - 1
LONG_MIN, LONG_MAX = -(2**63), 2**63 - 1


class Malformed(Exception):
    """The body cannot be bound to the DTO: 400 "Request body is missing or malformed."."""


# --------------------------------------------------------------------------- times


class Instant:
    """A Java ``Instant``: whole epoch seconds plus nanoseconds."""

    __slots__ = ("seconds", "nanos")

    def __init__(self, seconds: int, nanos: int = 0) -> None:
        self.seconds = seconds
        self.nanos = nanos

    def truncated(self) -> Instant:
        return Instant(self.seconds, 0)

    def iso(self) -> str:
        return format_instant(self.seconds, self.nanos)

    def key(self) -> tuple[int, int]:
        return (self.seconds, self.nanos)

    def __lt__(self, other: Instant) -> bool:
        return self.key() < other.key()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Instant) and self.key() == other.key()

    def __hash__(self) -> int:
        return hash(self.key())

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return f"Instant({self.iso()})"


_INSTANT_RE = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?"
    r"([Zz]|[+-]\d{2}(?::?\d{2}(?::?\d{2})?)?)$"
)


def parse_instant(value: Any) -> Instant:
    """Parse a JSON value the way Jackson's InstantDeserializer does (ISO-8601 with an
    offset or ``Z``; or a number of epoch seconds).  Raises ``Malformed``."""
    if isinstance(value, bool) or value is None:
        raise Malformed("instant")
    if isinstance(value, int):
        if not LONG_MIN <= value <= LONG_MAX:
            raise Malformed("instant")
        return Instant(value, 0)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise Malformed("instant")
        secs = math.floor(value)
        return Instant(int(secs), int(round((value - secs) * 1e9)) % 1_000_000_000)
    if not isinstance(value, str):
        raise Malformed("instant")
    m = _INSTANT_RE.match(value.strip())
    if not m:
        raise Malformed("instant")
    year, month, day, hour, minute = (int(m.group(i)) for i in range(1, 6))
    second = int(m.group(6) or 0)
    frac = m.group(7) or ""
    nanos = int((frac + "000000000")[:9]) if frac else 0
    try:
        datetime(year, month, day, hour, minute, second)
    except ValueError as exc:
        raise Malformed("instant") from exc
    epoch = calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))
    off = m.group(8)
    if off not in ("Z", "z"):
        sign = -1 if off[0] == "-" else 1
        digits = off[1:].replace(":", "")
        oh = int(digits[0:2])
        om = int(digits[2:4] or 0)
        os_ = int(digits[4:6] or 0)
        if oh > 18 or om > 59 or os_ > 59:
            raise Malformed("instant")
        epoch -= sign * (oh * 3600 + om * 60 + os_)
    return Instant(epoch, nanos)


def _strip_fraction(nanos: int, width: int = 9) -> str:
    if not nanos:
        return ""
    return "." + f"{nanos:0{width}d}".rstrip("0")


def format_instant(seconds: int, nanos: int = 0) -> str:
    """``2026-02-22T14:00:00Z``, with a fraction (trailing zeros removed) only when
    there is one."""
    dt = datetime.fromtimestamp(seconds, tz=timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S") + _strip_fraction(nanos) + "Z"


def format_local(dt: datetime) -> str:
    """A Java ``LocalDateTime`` (no offset), UTC, microseconds without trailing zeros."""
    dt = dt.astimezone(timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S") + _strip_fraction(dt.microsecond, 6)


def format_spring_timestamp(dt: datetime) -> str:
    """The timestamp of Spring Boot's default error body: ``…:58.123+00:00``."""
    dt = dt.astimezone(timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S") + f".{dt.microsecond // 1000:03d}+00:00"


def instant_of(dt: datetime) -> Instant:
    ts = dt.timestamp()
    secs = math.floor(ts)
    return Instant(int(secs), dt.microsecond * 1000)


def parse_iso_datetime(text: str) -> datetime:
    """Parse an ISO instant (for the control API's clock); naive means UTC."""
    inst = parse_instant(text) if not isinstance(text, datetime) else instant_of(text)
    return datetime.fromtimestamp(inst.seconds, tz=timezone.utc).replace(
        microsecond=inst.nanos // 1000
    )


# --------------------------------------------------------------------------- numbers


def f32(value: float) -> float:
    """Round a double to a Java ``float``."""
    return struct.unpack("<f", struct.pack("<f", value))[0]


def float_as_java_float(value: float) -> float:
    """The double whose shortest repr equals Java's ``Float.toString`` of ``(float) value``,
    so that a value stored in a FLOAT column is served back the way Jackson prints it."""
    v32 = f32(value)
    if v32 == 0 or not math.isfinite(v32):
        return v32
    for digits in range(1, 10):
        candidate = float(f"{v32:.{digits}g}")
        if f32(candidate) == v32:
            return candidate
    return v32


def utf16_len(text: str) -> int:
    """Java's ``String.length()``: UTF-16 code units."""
    return len(text.encode("utf-16-le")) // 2


# --------------------------------------------------------------------------- binding


def to_long(value: Any) -> int | None:
    """Bind a JSON value to a Java ``Long`` like Jackson (coercing numeric strings and
    integral floats)."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise Malformed("long")
    if isinstance(value, int):
        out = value
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise Malformed("long")
        out = int(value)
    elif isinstance(value, str):
        text = value.strip()
        if text == "":
            return None
        if not re.fullmatch(r"[+-]?\d+", text):
            raise Malformed("long")
        out = int(text)
    else:
        raise Malformed("long")
    if not LONG_MIN <= out <= LONG_MAX:
        raise Malformed("long")
    return out


def to_int(value: Any) -> int | None:
    out = to_long(value)
    if out is not None and not INT_MIN <= out <= INT_MAX:
        raise Malformed("int")
    return out


def to_float(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise Malformed("float")
    if isinstance(value, (int, float)):
        out = float(value)
    elif isinstance(value, str):
        text = value.strip()
        if text == "":
            return None
        try:
            out = float(text)
        except ValueError as exc:
            raise Malformed("float") from exc
    else:
        raise Malformed("float")
    return out


def to_str(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return json.dumps(value)
    raise Malformed("string")


def to_bool(value: Any) -> bool | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    if isinstance(value, int):
        return value != 0
    raise Malformed("bool")


def to_enum(value: Any, allowed: tuple[str, ...]) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or value not in allowed:
        raise Malformed("enum")
    return value


def parse_json_body(raw: bytes) -> Any:
    """Strict JSON (no NaN/Infinity), like Jackson.  Raises ``Malformed``."""
    if not raw or not raw.strip():
        raise Malformed("empty")

    def _reject(_name: str) -> Any:
        raise Malformed("constant")

    try:
        return json.loads(raw.decode("utf-8"), parse_constant=_reject)
    except (ValueError, UnicodeDecodeError) as exc:
        raise Malformed("json") from exc


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
