"""The lean streaming client against raw loopback servers that answer exact bytes."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest

from arbor.tools.bench.client import send_request
from arbor.tools.bench.models import Workload
from arbor.tools.bench.prompts import Prompt
from arbor.tools.bench.wire import Endpoint, NoByteError, StreamError, stream_post

pytestmark = pytest.mark.anyio
SSE = (b'data: {"choices":[{"text":"a"}]}\n\ndata: {"choices":[{"text":"b"}]}\n\n'
       b'data: {"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2}}\n\ndata: [DONE]\n\n')


@asynccontextmanager
async def raw_server(reply: Callable[[int], bytes | None]) -> AsyncIterator[str]:
    """A server that reads one request and writes `reply(n)` for the n-th connection (None: close at once)."""
    count = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal count
        count += 1
        try:
            await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):  # the client gave up first
            writer.close()
            return
        data = reply(count)
        if data:
            writer.write(data)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()


def wl() -> Workload:
    return Workload(model="m", input_len=3, output_len=2, max_concurrency=1, num_prompts=1, warmup=0,
                    request_timeout_s=5)


async def run(reply: Callable[[int], bytes | None]):
    async with raw_server(reply) as url:
        return await send_request(Endpoint(url + "/v1/completions"), wl(), Prompt("a b c", 3, True), 2)


async def test_content_length_and_close_delimited_bodies() -> None:
    with_length = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(SSE) + SSE
    record = await run(lambda n: with_length)
    assert record.success and record.generated_text == "ab" and record.output_tokens == 2 and record.prompt_len == 3
    close_delimited = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n" + SSE
    record = await run(lambda n: close_delimited)
    assert record.success and len(record.token_times) == 2 and record.ttft is not None


async def test_a_stream_that_stops_without_done_is_a_failure() -> None:
    cut = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n" + SSE.split(b"data: {\"choices\":[],")[0]
    record = await run(lambda n: cut)
    assert not record.success and "without [DONE] or finish_reason" in record.error
    finish = b'data: {"choices":[{"text":"a","finish_reason":"length"}]}\n\n'
    record = await run(lambda n: b"HTTP/1.1 200 OK\r\n\r\n" + finish)
    assert record.success and record.output_tokens == 1


@pytest.mark.parametrize("event", [b"null", b'"text"', b"[1]", b'{"choices": "x"}', b'{"choices": [5]}'])
async def test_odd_events_fail_the_request_not_the_run(event: bytes) -> None:
    body = b"data: " + event + b"\n\n" + SSE
    record = await run(lambda n: b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    assert record.success is (event.startswith(b"{"))
    if not record.success:
        assert "undecodable event" in record.error


async def test_error_status_keeps_the_body() -> None:
    body = b'{"error": "model not loaded"}'
    record = await run(lambda n: b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    assert not record.success and record.error == 'HTTP 503: {"error": "model not loaded"}'


async def test_no_byte_is_retried_once_then_succeeds() -> None:
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n" % len(SSE) + SSE + b"\r\n0\r\n\r\n"
    record = await run(lambda n: None if n == 1 else chunked)
    assert record.success and record.retried


async def test_no_byte_twice_fails_cleanly() -> None:
    record = await run(lambda n: None)
    assert not record.success and record.retried and record.error.startswith("no response")


async def test_cut_mid_stream_is_a_failure_not_a_retry() -> None:
    record = await run(lambda n: b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n40\r\ndata: {")
    assert not record.success and not record.retried and "mid-stream" in record.error


async def test_garbage_and_bad_urls() -> None:
    async with raw_server(lambda n: b"SSH-2.0-OpenSSH\r\n\r\n") as url:
        with pytest.raises(StreamError, match="malformed"):
            await stream_post(Endpoint(url + "/x"), {}, 5)
    with pytest.raises(ValueError, match="not an http"):
        Endpoint("ftp://host/x")
    with pytest.raises(NoByteError):
        await stream_post(Endpoint("http://127.0.0.1:1/x"), {}, 5)


async def test_requests_cancelled_at_any_moment_leave_no_unread_failure() -> None:
    """A run stopped mid-connect must not leave a failed future nobody reads (asyncio reports it as an error)."""
    loop = asyncio.get_running_loop()
    reported: list[dict] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: reported.append(context))
    try:
        async with raw_server(lambda n: None) as url:
            endpoint = Endpoint(url + "/x")
            for spins in range(12):
                task = asyncio.ensure_future(stream_post(endpoint, {}, 5))
                for _ in range(spins):
                    await asyncio.sleep(0)
                task.cancel()
                try:
                    await task
                except (asyncio.CancelledError, NoByteError):
                    pass
            await asyncio.sleep(0.05)
            gc.collect()
            await asyncio.sleep(0)
    finally:
        loop.set_exception_handler(previous)
    assert not reported, [str(c.get("exception") or c.get("message")) for c in reported]
