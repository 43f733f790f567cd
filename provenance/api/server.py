"""The HTTP server: uvicorn with bounds on what a connection may cost before the app sees it.

uvicorn's httptools protocol accumulates a request's headers without a limit and never times out
a request still arriving, so one client can stall the event loop with a 64 MB header or hold
connections open for free by sending a byte at a time. These bounds close that at the socket.
"""

from __future__ import annotations

import asyncio
from typing import Any

import uvicorn
from fastapi import FastAPI
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from provenance.core.config import Settings

_STATUS_TEXT = {408: b"Request Timeout", 431: b"Request Header Fields Too Large"}


class BoundedHttpProtocol(HttpToolsProtocol):
    """httptools with a header-size bound, a header deadline and a body idle timeout.

    The bounds come from class attributes set by `serve` (uvicorn builds the protocol itself).
    """

    max_header_bytes = 64 * 1024
    header_timeout_s = 15.0
    body_idle_s = 60.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_bytes = 0
        self._in_headers = True
        self._last_data = 0.0
        self._watch: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(self.header_timeout_s)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self._last_data = self.loop.time()
        if self._watch is None:  # the first byte of the next request on a kept-alive connection
            self._in_headers = True
            self._header_bytes = 0
            self._arm(self.header_timeout_s)
        super().data_received(data)
        # httptools buffers a header until it ends, so count what arrived while headers were open.
        if self._in_headers and not self.transport.is_closing():
            self._header_bytes += len(data)
            if self._header_bytes > self.max_header_bytes:
                self._close_with(431)

    def on_headers_complete(self) -> None:
        self._in_headers = False
        self._arm(self.body_idle_s)
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    def send_400_response(self, msg: str) -> None:
        if not self.transport.is_closing():  # not after our own 431 or 408
            super().send_400_response(msg)

    def _arm(self, seconds: float) -> None:
        self._disarm()
        self._watch = self.loop.call_later(seconds, self._check_idle)

    def _disarm(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None

    def _check_idle(self) -> None:
        """Headers must be complete by their deadline; a body may not go silent for `body_idle_s`."""
        self._watch = None
        if self._in_headers:
            self._close_with(408)
            return
        idle = self.loop.time() - self._last_data
        if idle >= self.body_idle_s:
            self._close_with(408)
        else:
            self._arm(self.body_idle_s - idle)

    def _close_with(self, status: int) -> None:
        self._disarm()
        if self.transport.is_closing():
            return
        if self.cycle is None or not self.cycle.response_started:
            reason = _STATUS_TEXT[status]
            self.transport.write(
                b"HTTP/1.1 %d %s\r\ncontent-type: text/plain\r\ncontent-length: %d\r\n"
                b"connection: close\r\n\r\n%s" % (status, reason, len(reason), reason)
            )
        if self.cycle is not None:
            self.cycle.disconnected = True
            self.cycle.message_event.set()
        self.transport.close()


def serve(app: FastAPI, settings: Settings) -> None:
    """Run `app` with uvicorn on the configured address, behind the connection bounds."""
    BoundedHttpProtocol.max_header_bytes = settings.http_max_header_bytes
    BoundedHttpProtocol.header_timeout_s = settings.http_header_timeout_s
    BoundedHttpProtocol.body_idle_s = settings.http_body_idle_s
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level="info",
        http=BoundedHttpProtocol,
        timeout_keep_alive=5,
    )
