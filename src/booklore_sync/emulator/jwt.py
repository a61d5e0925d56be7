"""Minimal HS256 JSON Web Tokens (standard library only)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

_HEADER = {"alg": "HS256", "typ": "JWT"}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    pad = "=" * (-len(text) % 4)
    return base64.urlsafe_b64decode(text + pad)


def _json(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode("utf-8")


def encode(claims: dict[str, Any], secret: bytes) -> str:
    """Deterministic: the same claims and secret always give the same token (which is
    what makes BookLore's same-second refresh-token collision reproducible)."""
    signing_input = _b64(_json(_HEADER)) + "." + _b64(_json(claims))
    sig = hmac.new(secret, signing_input.encode("ascii"), hashlib.sha256).digest()
    return signing_input + "." + _b64(sig)


def decode_unverified(token: str) -> dict[str, Any] | None:
    try:
        _header, payload, _sig = token.split(".")
        claims = json.loads(_unb64(payload))
    except (ValueError, UnicodeDecodeError):
        return None
    return claims if isinstance(claims, dict) else None


def verify_signature(token: str, secret: bytes) -> dict[str, Any] | None:
    """The claims if the signature is valid (expiry is the caller's business)."""
    try:
        header_b64, payload_b64, sig_b64 = token.split(".")
        header = json.loads(_unb64(header_b64))
        sig = _unb64(sig_b64)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(header, dict) or header.get("alg") != "HS256":
        return None
    expected = hmac.new(
        secret, (header_b64 + "." + payload_b64).encode("ascii"), hashlib.sha256
    ).digest()
    if not hmac.compare_digest(sig, expected):
        return None
    return decode_unverified(token)
