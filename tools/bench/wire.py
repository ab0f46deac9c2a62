"""A lean HTTP/1.1 streaming POST on asyncio's protocol layer, for the load generator's hot path.

Each response byte is stamped with `time.perf_counter()` in `data_received`, the
first moment the event loop sees it, and the server-sent-event lines are only split
there; JSON is decoded after the stream ends. With httpx on this path the client
spent about a core at 64 streams and its token timestamps lagged by more than a
millisecond (tests/perf/bench_client.py); keep-alive is off, as llama-server needs.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit


class NoByteError(Exception):
    """The connection failed before any response byte: the request never reached the engine."""


class StreamError(Exception):
    """The response broke off or was malformed after it had started."""


@dataclass
class StreamedResponse:
    """Status, headers, and the SSE `data:` payloads with their arrival times."""

    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    events: list[tuple[float, bytes]] = field(default_factory=list)
    body: bytearray = field(default_factory=bytearray)


class _Protocol(asyncio.Protocol):
    def __init__(self, request: bytes, done: asyncio.Future[StreamedResponse]) -> None:
        self.request, self.done = request, done
        self.response = StreamedResponse()
        self.buffer = bytearray()
        self.head_done = False
        self.chunked = False
        self.remaining: int | None = None  # content-length left, or bytes left in the current chunk
        self.got_byte = False
        self.sse = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        transport.write(self.request)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        self.got_byte = True
        self.buffer += data
        try:
            if not self.head_done and not self._parse_head():
                return
            self._parse_body(now)
        except (ValueError, StreamError) as exc:
            self._finish(StreamError(f"malformed response: {exc}"))

    def eof_received(self) -> bool | None:
        if self.head_done and not self.chunked and self.remaining is None:
            self._flush_sse(time.perf_counter())
            self._finish(None)  # body delimited by connection close
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if self.done.done():
            return
        if not self.got_byte:
            self._finish(NoByteError(str(exc) if exc else "connection closed before any response byte"))
        elif self.head_done and not self.chunked and self.remaining is None and exc is None:
            self._flush_sse(time.perf_counter())
            self._finish(None)
        else:
            self._finish(StreamError(f"connection lost mid-stream{': ' + str(exc) if exc else ''}"))

    def _parse_head(self) -> bool:
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return False
        head = bytes(self.buffer[:end]).decode("latin-1").split("\r\n")
        del self.buffer[: end + 4]
        parts = head[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/"):
            raise StreamError(f"bad status line {head[0]!r}")
        self.response.status = int(parts[1])
        for line in head[1:]:
            name, _, value = line.partition(":")
            self.response.headers[name.strip().lower()] = value.strip()
        self.head_done = True
        self.chunked = "chunked" in self.response.headers.get("transfer-encoding", "").lower()
        if not self.chunked and "content-length" in self.response.headers:
            self.remaining = int(self.response.headers["content-length"])
        else:
            self.remaining = 0 if self.chunked else None
        return True

    def _parse_body(self, now: float) -> None:
        buf = self.buffer
        if not self.chunked:
            take = len(buf) if self.remaining is None else min(len(buf), self.remaining)
            self._body(bytes(buf[:take]), now)
            del buf[:take]
            if self.remaining is not None:
                self.remaining -= take
                if self.remaining == 0:
                    self._flush_sse(now)
                    self._finish(None)
            return
        while buf:
            if self.remaining:  # inside a chunk
                take = min(len(buf), self.remaining)
                self._body(bytes(buf[:take]), now)
                del buf[:take]
                self.remaining -= take
                continue
            line_end = buf.find(b"\r\n")
            if line_end < 0:
                return
            line = bytes(buf[:line_end])
            if not line:  # the CRLF that closes a chunk's data
                del buf[:2]
                continue
            size = int(line.split(b";", 1)[0], 16)
            if size == 0:
                self._flush_sse(now)
                self._finish(None)
                return
            del buf[: line_end + 2]
            self.remaining = size

    def _body(self, data: bytes, now: float) -> None:
        if self.response.status != 200:
            self.response.body += data
            return
        self.sse += data
        *lines, rest = self.sse.split(b"\n")
        self.sse = bytearray(rest)
        for line in lines:
            if line.startswith(b"data:"):
                self.response.events.append((now, bytes(line[5:]).strip()))

    def _flush_sse(self, now: float) -> None:
        if self.sse.startswith(b"data:"):
            self.response.events.append((now, bytes(self.sse[5:]).strip()))
        self.sse = bytearray()

    def _finish(self, error: Exception | None) -> None:
        if not self.done.done():
            if error is None:
                self.done.set_result(self.response)
            else:
                self.done.set_exception(error)
        if self.transport is not None:
            self.transport.close()


class Endpoint:
    """Where requests go: host, port, TLS, and the path prefix of one base URL."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.path = parts.path or "/"
        self.ssl = ssl.create_default_context() if parts.scheme == "https" else None
        self.host_header = parts.netloc

    def request(self, body: dict) -> bytes:
        """The bytes of a JSON POST to this endpoint with keep-alive off."""
        payload = json.dumps(body).encode()
        head = (f"POST {self.path} HTTP/1.1\r\nHost: {self.host_header}\r\nContent-Type: application/json\r\n"
                f"Accept: text/event-stream\r\nConnection: close\r\nContent-Length: {len(payload)}\r\n\r\n")
        return head.encode() + payload


async def stream_post(endpoint: Endpoint, body: dict, timeout_s: float) -> StreamedResponse:
    """POST `body` and collect the whole streamed response; NoByteError or StreamError on failure."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[StreamedResponse] = loop.create_future()
    try:
        try:
            transport, _ = await asyncio.wait_for(
                loop.create_connection(lambda: _Protocol(endpoint.request(body), done), endpoint.host,
                                       endpoint.port, ssl=endpoint.ssl), timeout=min(timeout_s, 30.0))
        except (TimeoutError, OSError) as exc:
            raise NoByteError(f"connect failed: {exc or type(exc).__name__}") from exc
        try:
            return await asyncio.wait_for(done, timeout_s)
        except TimeoutError as exc:
            raise StreamError(f"no complete response within {timeout_s:g}s") from exc
        finally:
            transport.close()
    finally:
        _settle(done)


def _settle(done: asyncio.Future[StreamedResponse]) -> None:
    """Mark `done` as read: a connection torn down while connecting may have failed it after nobody waits."""
    if not done.done():
        done.cancel()
    elif not done.cancelled():
        done.exception()
