"""The gate every request passes before any route reads its body.

A body costs memory and event-loop time to read and parse, so an unauthenticated request must
not get that far: the API key is checked first, from the headers alone. Each route then has its
own bound (kilobytes for JSON, the media bound for uploads), enforced while the body streams in,
and a JSON body is refused when it nests deeper than any of our documents do, before a parser
recurses into it.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from contextlib import suppress
from dataclasses import dataclass

import numpy as np
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from provenance.api.problems import problem

# Checks an API key from the Authorization header: None when valid, else (code, detail).
KeyCheck = Callable[[str], Awaitable[tuple[str, str] | None]]

_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKETS = bytes(range(256)).translate(None, b"[]{}")
# Deeper than any document of ours (a manifest nests 4 levels); a parser recursing into 100,000
# levels overflows the C stack.
MAX_JSON_DEPTH = 32
# Paths open to all, and paths whose sign-in is a cookie checked by the route (the web pages).
_OPEN_PREFIXES = ("/health", "/docs", "/openapi.json", "/ui/", "/static/")
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
MEDIA_PATHS = frozenset(
    {"/v1/registrations", "/v1/verifications", "/v1/c2pa/sign", "/matches/byContent", "/ui/verifications"}
)


class _TooLarge(Exception):
    pass


@dataclass(frozen=True)
class BodyBounds:
    """Bytes a request body may have: uploads by path, JSON elsewhere."""

    media: int
    json: int
    # A signed manifest sent as JSON to a path that also takes media.
    manifest: int
    # Exact paths that take media (multipart or raw), and bounds of their own by exact path.
    media_paths: frozenset[str]
    by_path: dict[str, int]

    def for_request(self, path: str, content_type: bytes) -> int:
        if path in self.by_path:
            return self.by_path[path]
        if path in self.media_paths:
            return self.manifest if _is_json(content_type) else self.media
        return self.json


def _is_json(content_type: bytes) -> bool:
    kind = content_type.split(b";", 1)[0].strip().lower()
    return kind == b"application/json" or kind.endswith(b"+json")


def json_depth(body: bytes) -> int:
    """How deep the brackets of a JSON text nest (strings skipped); linear time, no recursion."""
    brackets = _JSON_STRING.sub(b"", body).translate(None, _BRACKETS)
    if not brackets:
        return 0
    codes = np.frombuffer(brackets, dtype=np.uint8)
    steps = np.where((codes == ord("[")) | (codes == ord("{")), 1, -1)
    return int(np.cumsum(steps).max())


class RequestGate:
    """Authenticates requests that carry a body, then bounds and checks the body as it streams in.

    Refusals: 401 (`api_key_missing`, `api_key_invalid`) before a byte of the body is read, 413
    `request_too_large`, and 400 `json_too_deep`.
    """

    def __init__(self, app: ASGIApp, bounds: BodyBounds, check_key: KeyCheck) -> None:
        self.app = app
        self.bounds = bounds
        self.check_key = check_key

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        headers = dict(scope.get("headers", []))
        if scope.get("method") in _BODY_METHODS and not path.startswith(_OPEN_PREFIXES):
            refusal = await self._authenticate(headers.get(b"authorization", b""))
            if refusal is not None:
                response = problem(401, *refusal, headers={"WWW-Authenticate": "Bearer"})
                await response(scope, receive, send)
                return
        content_type = headers.get(b"content-type", b"")
        max_bytes = self.bounds.for_request(path, content_type)
        length = headers.get(b"content-length", b"")
        if length.isdigit() and int(length) > max_bytes:
            await _refuse_size(scope, receive, send, max_bytes)
            return
        if _is_json(content_type) and scope.get("method") in _BODY_METHODS:
            await self._json(scope, receive, send, max_bytes)
            return
        await self._streamed(scope, receive, send, max_bytes)

    async def _authenticate(self, authorization: bytes) -> tuple[str, str] | None:
        scheme, _, key = authorization.decode("latin-1").partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            return ("api_key_missing", "send an API key as 'Authorization: Bearer KEY'")
        return await self.check_key(key.strip())

    async def _json(self, scope: Scope, receive: Receive, send: Send, max_bytes: int) -> None:
        """Read the (small) JSON body whole, check its depth, then replay it to the route."""
        chunks: list[bytes] = []
        seen = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return
            chunk = message.get("body", b"")
            seen += len(chunk)
            if seen > max_bytes:
                await _refuse_size(scope, receive, send, max_bytes)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if json_depth(body) > MAX_JSON_DEPTH:
            response = problem(400, "json_too_deep", f"the JSON nests deeper than {MAX_JSON_DEPTH} levels")
            await response(scope, receive, send)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _streamed(self, scope: Scope, receive: Receive, send: Send, max_bytes: int) -> None:
        seen = 0
        started = False
        tripped = False

        async def counting_receive() -> Message:
            nonlocal seen, tripped
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > max_bytes:
                    tripped = True
                    raise _TooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if tripped:
                # A body parser caught _TooLarge and answers with its own error (multipart parsing
                # turns any exception into a 400); the answer is still 413, sent once, below.
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        with suppress(_TooLarge):
            await self.app(scope, counting_receive, tracking_send)
        if tripped and not started:
            await _refuse_size(scope, receive, send, max_bytes)


async def _refuse_size(scope: Scope, receive: Receive, send: Send, max_bytes: int) -> None:
    response = problem(413, "request_too_large", f"the request body exceeds {max_bytes} bytes")
    await response(scope, receive, send)
