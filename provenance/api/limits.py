"""Request-size bound enforced while the body streams in, before any parsing or spooling."""

from __future__ import annotations

from contextlib import suppress

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from provenance.api.problems import problem


class _TooLarge(Exception):
    pass


class BodySizeLimit:
    """Refuses with 413 `request_too_large` as soon as a body exceeds `max_bytes`."""

    def __init__(self, app: ASGIApp, max_bytes: int, by_path: dict[str, int] | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        # Tighter bounds for paths that take no media (e.g. a batch of manifests), by exact path.
        self.by_path = by_path or {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        max_bytes = self.by_path.get(scope.get("path", ""), self.max_bytes)
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > max_bytes:
                await self._refuse(scope, receive, send, max_bytes)
                return
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
            await self._refuse(scope, receive, send, max_bytes)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, max_bytes: int) -> None:
        response = problem(413, "request_too_large", f"the request body exceeds {max_bytes} bytes")
        await response(scope, receive, send)
