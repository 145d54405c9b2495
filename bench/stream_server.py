"""A light OpenAI-compatible streaming server for client benchmarks: asyncio protocol, one process.

    python bench/stream_server.py [--delay 0.05] [--chunks 20]

Prints ``http://127.0.0.1:PORT`` once it listens, then serves until its standard input closes.
Every ``POST .../chat/completions`` waits ``--delay`` seconds (the model's thinking time) and then
answers: with ``"stream": true`` in the body, a chunked ``text/event-stream`` of a role chunk,
``--chunks`` content chunks, a finish chunk, a usage chunk and ``[DONE]``, each event written on its
own as a real server writes tokens; otherwise one ``chat.completion`` JSON body. HTTP/1.1 keep-alive.

It does as little as it can per request (no JSON parsing, canned bytes), so that on a small machine
the clients being measured, not the server, use the CPU. uvloop is used when it is installed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys

_LENGTH = re.compile(rb"(?i)\r\ncontent-length:\s*(\d+)")
_HEAD_STREAM = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n"
    b"transfer-encoding: chunked\r\n\r\n"
)


def _event(obj: object) -> bytes:
    data = b"data: " + (obj if isinstance(obj, bytes) else json.dumps(obj, separators=(",", ":")).encode()) + b"\n\n"
    return b"%x\r\n%s\r\n" % (len(data), data)


def canned_stream(chunks: int) -> list[bytes]:
    """The chunked-encoding frames of one streamed answer, one SSE event each."""

    def chunk(delta: dict, finish: str | None = None) -> dict:
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        return {
            "id": "chatcmpl-bench",
            "object": "chat.completion.chunk",
            "created": 1700000000,
            "model": "bench",
            "choices": [choice],
        }

    usage = chunk({})
    usage.update(choices=[], usage={"prompt_tokens": 5, "completion_tokens": chunks, "total_tokens": 5 + chunks})
    events = [chunk({"role": "assistant", "content": ""})]
    events += [chunk({"content": f"w{i} "}) for i in range(chunks)]
    events += [chunk({}, "stop"), usage]
    return [_event(e) for e in events] + [_event(b"[DONE]"), b"0\r\n\r\n"]


def canned_json(chunks: int) -> bytes:
    body = json.dumps({
        "id": "chatcmpl-bench", "object": "chat.completion", "created": 1700000000, "model": "bench",
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": " ".join(f"w{i}" for i in range(chunks))}}],
        "usage": {"prompt_tokens": 5, "completion_tokens": chunks, "total_tokens": 5 + chunks},
    }).encode()  # fmt: skip
    return b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body)


class Handler(asyncio.Protocol):
    def __init__(self, delay: float, stream: list[bytes], whole: bytes) -> None:
        self.delay, self.stream, self.whole = delay, stream, whole
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            found = _LENGTH.search(self.buffer, 0, end)
            length = int(found.group(1)) if found else 0
            if len(self.buffer) < end + 4 + length:
                return
            body = self.buffer[end + 4 : end + 4 + length]
            self.buffer = self.buffer[end + 4 + length :]
            streamed = b'"stream":true' in body.replace(b" ", b"")
            asyncio.get_running_loop().call_later(self.delay, self.answer, streamed)

    def answer(self, streamed: bool) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if not streamed:
            transport.write(self.whole)
            return
        transport.write(_HEAD_STREAM + self.stream[0])
        for frame in self.stream[1:]:
            transport.write(frame)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None


async def serve(delay: float, chunks: int) -> None:
    loop = asyncio.get_running_loop()
    stream, whole = canned_stream(chunks), canned_json(chunks)
    server = await loop.create_server(lambda: Handler(delay, stream, whole), "127.0.0.1", 0, backlog=1024)
    print(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}", flush=True)
    stdin_closed = loop.create_future()
    loop.add_reader(sys.stdin.fileno(), lambda: stdin_closed.done() or stdin_closed.set_result(None))
    await stdin_closed
    server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--delay", type=float, default=0.05, help="seconds before each answer")
    parser.add_argument("--chunks", type=int, default=20, help="content chunks in each streamed answer")
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(serve(args.delay, args.chunks))


if __name__ == "__main__":
    main()
