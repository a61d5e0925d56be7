"""Health check and BookLore login/refresh (booklore-api.md §3.1–3.3)."""

from __future__ import annotations

import secrets
from typing import Any

from .. import flavours, jwt
from ..core import DATA_CONFLICT, INVALID_CREDENTIALS, TOO_MANY, validation
from ..routing import Router
from ..wire import format_local, to_str
from .base import ApiError, Controller, Ctx, Response, bind, json_response


class AuthController(Controller):
    def register(self, router: Router) -> None:
        router.add("GET", "/api/v1/healthcheck", self.healthcheck, self.api.since(flavours.HEALTHCHECK))
        router.add("GET", "/api/v1/version", self.version, self.api.only("grimmory"))
        router.add("POST", "/api/v1/auth/login", self.login)
        router.add("POST", "/api/v1/auth/refresh", self.refresh)

    def version(self, ctx: Ctx) -> Response:
        """Grimmory's version route.  Its exact body is not in the spec: the emulator
        answers the release it reproduces (docs/emulator.md)."""
        return json_response(200, {"current": self.state.version, "version": self.state.version})

    def healthcheck(self, ctx: Ctx) -> Response:
        stamp = format_local(self.state.clock.now())
        return json_response(200, {
            "status": 200, "message": "Pong",
            "data": {"status": "UP", "message": "Application is running smoothly.",
                     "version": self.state.version, "timestamp": stamp},
            "timestamp": stamp,
        })

    def _issue_tokens(self, user: dict[str, Any]) -> tuple[str, str]:
        st = self.state
        now = int(st.clock.time())
        access_claims = {
            "sub": user["username"], "userId": user["id"],
            "isDefaultPassword": user["isDefaultPassword"], "iat": now,
            "exp": now + st.access_token_ttl,
        }
        claims = {"sub": user["username"], "userId": user["id"], "tokenType": "refresh",
                  "iat": now, "exp": now + st.refresh_token_ttl}
        if st.flavour == "grimmory":  # Nimbus tokens carry (and the server checks) the issuer
            access_claims["iss"] = claims["iss"] = "booklore"
        access = st.token_for(access_claims)
        if not st.bug_compat:
            claims["jti"] = secrets.token_hex(8)
        refresh = st.token_for(claims)
        if refresh in st.refresh_tokens:
            # identical claims within one second: UNIQUE(refresh_token.token)
            raise ApiError(400, DATA_CONFLICT)
        return access, refresh

    def _store_tokens(self, user: dict[str, Any], access: str, refresh: str) -> None:
        st = self.state
        st.issued_access.append(access)
        st.refresh_tokens[refresh] = {"userId": user["id"],
                                      "expiry": int(st.clock.time()) + st.refresh_token_ttl,
                                      "revoked": False}

    def login(self, ctx: Ctx) -> Response:
        body = ctx.json_object()
        username = bind(lambda: to_str(body.get("username")))
        password = bind(lambda: to_str(body.get("password")))
        details = []
        if username is None or not username.strip():
            details.append("username: Username must not be blank")
        if password is None or not password.strip():
            details.append("password: Password must not be blank")
        validation(details)
        st = self.state
        if st.data["oidcOnly"]:
            raise ApiError(403, "Local login is disabled. Use OIDC to sign in.")
        ip_key, user_key = ("login-ip", ctx.req.client_ip), ("login-user", username.strip().lower())
        if st.limited(ip_key) or st.limited(user_key):
            raise ApiError(429, TOO_MANY)
        user = st.find_user(username)
        if user is None or user["password"] != password:
            st.fail(ip_key)
            st.fail(user_key)
            raise ApiError(400, INVALID_CREDENTIALS)
        st.limiter.pop(ip_key, None)
        st.limiter.pop(user_key, None)
        access, refresh = self._issue_tokens(user)
        self._store_tokens(user, access, refresh)
        if st.flavour == "grimmory":
            return json_response(200, {"accessToken": access, "refreshToken": refresh,
                                       "expires": st.access_token_ttl,
                                       "isDefaultPassword": bool(user["isDefaultPassword"])})
        return json_response(200, {"accessToken": access, "refreshToken": refresh,
                                   "isDefaultPassword": "true" if user["isDefaultPassword"] else "false"})

    def refresh(self, ctx: Ctx) -> Response:
        body = ctx.json_object()
        token = bind(lambda: to_str(body.get("refreshToken")))
        if token is None or not token.strip():
            validation(["refreshToken: Refresh token must not be blank"])
        st = self.state
        ip_key = ("refresh-ip", ctx.req.client_ip)
        if st.limited(ip_key):
            raise ApiError(429, TOO_MANY)
        rec = st.refresh_tokens.get(token)
        user = st.data["users"].get(rec["userId"]) if rec else None
        valid = (
            rec is not None and not rec["revoked"] and rec["expiry"] > st.clock.time()
            and token not in st.broken_tokens and token not in st.expired_tokens
            and jwt.verify_signature(token, st.secret) is not None and user is not None
        )
        if not valid or rec is None or user is None:
            st.fail(ip_key)
            raise ApiError(400, INVALID_CREDENTIALS)
        st.limiter.pop(ip_key, None)
        access, new_refresh = self._issue_tokens(user)
        rec["revoked"] = True
        self._store_tokens(user, access, new_refresh)
        out: dict[str, Any] = {"accessToken": access, "refreshToken": new_refresh}
        if st.flavour == "grimmory":
            out["expires"] = st.access_token_ttl
        return json_response(200, out)

