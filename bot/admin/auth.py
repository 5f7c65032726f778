"""Who may see the admin page: the holder of `ADMIN_TOKEN`.

Either as a bearer token (`Authorization: Bearer …`, for scripts fetching the JSON or
CSV) or through the login form, which sets a cookie. The cookie holds a keyed hash of
the token, not the token itself, is HttpOnly and SameSite=Strict, and is Secure when
the page is served over HTTPS. Every comparison takes constant time.
"""

from __future__ import annotations

import hashlib
import hmac

from aiohttp import web
from pydantic import SecretStr

COOKIE = "parley_admin"
COOKIE_MAX_AGE = 12 * 3600
MAX_TOKEN_CHARS = 1000


class AdminAuth:
    def __init__(self, token: SecretStr) -> None:
        self._token = token.get_secret_value().encode()
        self._cookie = hmac.new(self._token, b"parley admin cookie", hashlib.sha256).hexdigest()

    def token_matches(self, candidate: str) -> bool:
        if len(candidate) > MAX_TOKEN_CHARS:
            return False
        return hmac.compare_digest(candidate.encode(), self._token)

    def allowed(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        scheme, _, credentials = header.partition(" ")
        if scheme.lower() == "bearer" and self.token_matches(credentials.strip()):
            return True
        cookie = request.cookies.get(COOKIE, "")
        return hmac.compare_digest(cookie.encode(), self._cookie.encode())

    def set_cookie(self, request: web.Request, response: web.StreamResponse) -> None:
        response.set_cookie(
            COOKIE,
            self._cookie,
            max_age=COOKIE_MAX_AGE,
            path="/admin",
            httponly=True,
            samesite="Strict",
            secure=request.secure,
        )
