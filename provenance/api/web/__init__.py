"""The web interface's building blocks: templates, our own static files, headers and the session.

Pages are rendered on the server with Jinja2; the little JavaScript there is (`static/app.js`)
only uploads with a progress bar and polls for results. Nothing is loaded from another origin.

**Session design.** Signing in means pasting an API key; the server checks it and opens a
server-side session (`provenance.web_sessions`: a random token whose hash is stored in the
database with an expiry, so every API process shares it and signing out revokes it). The
`provenance_session` cookie holds that token, never the key: HttpOnly (no script can read it),
SameSite=Strict (no other site's page can make the browser send it), Path=/, Secure when the
request came over HTTPS (the request's scheme; behind a proxy, uvicorn sets it from
X-Forwarded-Proto only for the proxies it trusts, `FORWARDED_ALLOW_IPS`, loopback by default),
8 hours. `CookieSession`, an ASGI middleware, hands the cookie's token to the API as
`Authorization: Bearer TOKEN` for requests that carry no Authorization of their own, and marks the
request (`scope[SCOPE_KEY]`) as one it vouched for, so the pages call the same `/v1` endpoints as
every other client (POST /v1/verifications, GET /v1/verifications/{id}, the receipt) under the
same scope checks; a session token that a client sends as a bearer itself is refused (it is a
cookie, not an API key). As defence in depth against cross-site request forgery it only does so
when the browser says the request is same-origin (`Sec-Fetch-Site`, or for unsafe methods the
`Origin` header), and unsafe methods only for the few endpoints the pages post to.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import cookie_parser
from starlette.types import ASGIApp, Receive, Scope, Send

from provenance.web_sessions import SCOPE_KEY, TOKEN_PREFIX

HERE = Path(__file__).parent
STATIC_DIR = HERE / "static"
SESSION_COOKIE = "provenance_session"
SESSION_MAX_AGE = 8 * 3600
# Scopes that may use the web interface (admin is admitted everywhere, as in the API).
WEB_SCOPES = frozenset({"newsroom", "factchecker", "admin"})
# The only unsafe requests a session cookie may authenticate: what the pages post.
COOKIE_POSTS = frozenset({"/v1/verifications", "/ui/verifications", "/ui/sign-out"})
STATIC_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8"}

PAGE_CSP = (
    "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)

_KEY = re.compile(r"^[A-Za-z0-9_-]{1,200}$")
_SAFE_METHODS = frozenset({"GET", "HEAD"})

templates = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)


def security_headers(csp: str = PAGE_CSP) -> dict[str, str]:
    """Headers every page gets: a strict CSP, no sniffing, no framing, no referrer, no caching."""
    return {
        "Content-Security-Policy": csp,
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "no-referrer",
        "Cross-Origin-Opener-Policy": "same-origin",
        "Cross-Origin-Resource-Policy": "same-origin",
        "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=(), usb=()",
        "Cache-Control": "no-store",
    }


def static_files() -> dict[str, Path]:
    """Our static files by name: the only ones `/static/{name}` serves."""
    return {p.name: p for p in STATIC_DIR.iterdir() if p.is_file() and p.suffix in STATIC_TYPES}


def valid_key_text(key: str) -> bool:
    """API keys are URL-safe tokens: anything else is not worth a database lookup (or a header)."""
    return bool(_KEY.match(key))


def _header(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> str | None:
    for key, value in headers:
        if key == name:
            return value.decode("latin-1")
    return None


def same_origin(headers: Iterable[tuple[bytes, bytes]], scheme: str) -> bool:
    """Whether the browser says the request comes from one of our own pages.

    `Sec-Fetch-Site` when the browser sends it; otherwise the `Origin` header against our own
    scheme and host. A request with neither is not same-origin (non-browser clients use bearer).
    """
    headers = list(headers)
    site = _header(headers, b"sec-fetch-site")
    if site is not None:
        return site == "same-origin"
    origin, host = _header(headers, b"origin"), _header(headers, b"host")
    return origin is not None and host is not None and origin == f"{scheme}://{host}"


class CookieSession:
    """Turns the session cookie into `Authorization: Bearer TOKEN` for same-origin page requests,
    marking them `scope[SCOPE_KEY]`; drops a session token a client sent as its own bearer."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope = dict(scope)
            scope.pop(SCOPE_KEY, None)
            headers: list[tuple[bytes, bytes]] = [
                (k, v)
                for k, v in scope["headers"]
                if not (
                    k == b"authorization" and v.split(b" ", 1)[-1].strip().startswith(TOKEN_PREFIX.encode())
                )
            ]
            scope["headers"] = headers
            token = self._session_token(scope)
            if token is not None:
                scope["headers"] = [*headers, (b"authorization", f"Bearer {token}".encode())]
                scope[SCOPE_KEY] = token
        await self.app(scope, receive, send)

    @staticmethod
    def _session_token(scope: Scope) -> str | None:
        path: str = scope["path"]
        if not (path.startswith("/v1/") or path.startswith("/ui/")):
            return None
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        if _header(headers, b"authorization") is not None:
            return None
        cookie = _header(headers, b"cookie")
        token = cookie_parser(cookie).get(SESSION_COOKIE) if cookie else None
        # Only our session tokens: a cookie from before sessions (a raw API key) is worth nothing now.
        if not token or not token.startswith(TOKEN_PREFIX) or not valid_key_text(token):
            return None
        method = scope["method"]
        if method in _SAFE_METHODS:
            site = _header(headers, b"sec-fetch-site")
            return token if site in (None, "same-origin", "none") else None
        if path in COOKIE_POSTS and method == "POST" and same_origin(headers, scope.get("scheme", "http")):
            return token
        return None
