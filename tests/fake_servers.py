"""Small real HTTP servers on 127.0.0.1 for the tests and the benchmark (standard library only).

:class:`FakeServer` runs a route table on a free loopback port in a daemon thread, speaking HTTP/1.1
with keep-alive and chunked streaming, and records every request. Two apps:

- :func:`openai_app`: an OpenAI-compatible server. The model name picks a behaviour: any name echoes
  the last user message; ``status-<code>`` answers that status with an OpenAI error body (and
  ``Retry-After: 7`` on 429/503); ``flaky`` fails ``fail_first`` times per ``flaky_id`` with 503 and
  ``Retry-After: 0``; ``slow`` sleeps ``delay`` seconds first; ``bad-json`` answers 200 with a body
  that is not JSON; in streams, ``broken-stream`` drops the connection after two chunks,
  ``bad-sse`` sends an event that is not JSON, ``no-done`` ends the body early, ``stall-stream`` pauses ``delay``
  seconds after two chunks, and ``stream-error`` sends an error event mid-stream, ``crlf-lines`` / ``cr-lines`` end
  lines with ``\r\n`` / ``\r``. ``burst=True`` writes a whole stream at once (for the benchmark).
- :func:`torchserve_app`: a torch-serve style ``POST /predictions/{model}`` answering
  ``{"generated_text": ...}`` or, with ``"stream": true``, JSON lines ``{"token": ...}``.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Exchange:
    """One request and the means to answer it."""

    def __init__(self, handler: BaseHTTPRequestHandler, body: bytes) -> None:
        self._handler = handler
        self.method = handler.command
        self.path = handler.path
        self.headers = {key.lower(): value for key, value in handler.headers.items()}
        self.body = body
        self.json = (
            json.loads(body) if body and self.headers.get("content-type", "").startswith("application/json") else None
        )
        self.client_port = handler.client_address[1]

    def send(
        self, status: int, body: bytes, content_type: str = "application/json", headers: dict | None = None
    ) -> None:
        h = self._handler
        h.send_response(status)
        h.send_header("Content-Type", content_type)
        h.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            h.send_header(key, value)
        h.end_headers()
        h.wfile.write(body)

    def send_json(self, status: int, obj: Any, headers: dict | None = None) -> None:
        self.send(status, json.dumps(obj).encode(), headers=headers)

    def start_stream(self, content_type: str = "text/event-stream") -> None:
        h = self._handler
        h.send_response(200)
        h.send_header("Content-Type", content_type)
        h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()

    def write(self, data: bytes) -> None:
        self._handler.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self._handler.wfile.flush()

    def end_stream(self) -> None:
        self._handler.wfile.write(b"0\r\n\r\n")
        self._handler.wfile.flush()

    def drop(self) -> None:
        """Cut the connection without ending the chunked body: a server that died mid-stream."""
        self._handler.wfile.flush()
        self._handler.close_connection = True
        self._handler.connection.shutdown(2)


Route = Callable[[Exchange], None]


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 128  # the default backlog of 5 resets connections under concurrent tests

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up (a timeout, a stream closed early) is expected here; anything else is not.
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class FakeServer:
    """``routes`` maps ``(method, path prefix)`` to a function answering an :class:`Exchange`."""

    def __init__(self, routes: dict[tuple[str, str], Route]) -> None:
        self.routes = routes
        self.requests: list[Exchange] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out in separate writes

            def log_message(self, *args: Any) -> None:  # keep test output quiet
                pass

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                exchange = Exchange(self, self.rfile.read(length) if length else b"")
                server.requests.append(exchange)
                for (method, prefix), route in server.routes.items():
                    if method == self.command and self.path.startswith(prefix):
                        return route(exchange)
                exchange.send_json(404, {"error": {"message": f"no route for {self.command} {self.path}"}})

            do_GET = do_POST = _serve

        self._httpd = _QuietServer(("127.0.0.1", 0), Handler)
        self.port = self._httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self) -> FakeServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


# -- the OpenAI-compatible app ----------------------------------------------------------------------
def _last_user_text(messages: list) -> str:
    for message in reversed(messages or []):
        if message.get("role") == "user":
            return message.get("content") or ""
    return ""


def _usage(prompt: str, answer: str) -> dict:
    p, c = len(prompt.split()), len(answer.split())
    return {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}


def _chunk(model: str, delta: dict, finish_reason: str | None = None) -> dict:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
    }


def _sse(obj: Any) -> bytes:
    return b"data: " + (obj if isinstance(obj, bytes) else json.dumps(obj).encode()) + b"\n\n"


def openai_app(api_key: str | None = None) -> dict[tuple[str, str], Route]:
    flaky_hits: dict[str, int] = {}
    lock = threading.Lock()

    def failure(ex: Exchange, model: str, body: dict) -> bool:
        """Answer with the error the model name asks for; False when there is none."""
        if api_key is not None and ex.headers.get("authorization") != f"Bearer {api_key}":
            ex.send_json(401, {"error": {"message": "Incorrect API key provided", "type": "invalid_request_error"}})
            return True
        if model.startswith("status-"):
            status = int(model.split("-", 1)[1])
            headers = {"Retry-After": "7"} if status in (429, 503) else None
            ex.send_json(status, {"error": {"message": f"fake failure {status} for {model}", "code": status}}, headers)
            return True
        if model == "flaky":
            with lock:
                hits = flaky_hits[body["flaky_id"]] = flaky_hits.get(body["flaky_id"], 0) + 1
            if hits <= body.get("fail_first", 1):
                ex.send_json(503, {"error": {"message": "overloaded, try again"}}, {"Retry-After": "0"})
                return True
        if model == "slow":
            time.sleep(float(body.get("delay", 2)))
        if model == "bad-json":
            ex.send(200, b"<html>this is not json")
            return True
        return False

    def chat(ex: Exchange) -> None:
        body = ex.json
        model = body["model"]
        if failure(ex, model, body):
            return
        prompt = _last_user_text(body["messages"])
        words = int(body.get("max_tokens") or 0)
        answer = " ".join(["word"] * words) if words else prompt
        if not body.get("stream"):
            message = {"role": "assistant", "content": answer}
            ex.send_json(
                200,
                {
                    "id": "chatcmpl-fake",
                    "object": "chat.completion",
                    "created": 1700000000,
                    "model": model,
                    "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                    "usage": _usage(prompt, answer),
                },
            )
            return
        stream_chat(ex, model, body, prompt, answer)

    def stream_chat(ex: Exchange, model: str, body: dict, prompt: str, answer: str) -> None:
        pieces = [piece + " " for piece in answer.split(" ")]
        pieces[-1] = pieces[-1].rstrip()
        events = [_sse(_chunk(model, {"role": "assistant", "content": ""}))]
        events += [_sse(_chunk(model, {"content": piece})) for piece in pieces]
        events.append(_sse(_chunk(model, {}, "stop")))
        if (body.get("stream_options") or {}).get("include_usage"):
            usage_chunk = _chunk(model, {})
            usage_chunk.update(choices=[], usage=_usage(prompt, answer))
            events.append(_sse(usage_chunk))
        events.append(_sse(b"[DONE]"))
        ending = {"crlf-lines": b"\r\n", "cr-lines": b"\r"}.get(model)
        if ending:  # the other line ends server-sent events allow
            events = [event.replace(b"\n", ending) for event in events]
        ex.start_stream()
        if model == "broken-stream":
            for event in events[:3]:
                ex.write(event)
            return ex.drop()
        if model == "bad-sse":
            ex.write(events[0] + _sse(b'{"choices": [ {not json'))
        elif model == "no-done":
            ex.write(events[0] + events[1])
        elif model == "stall-stream":
            ex.write(events[0] + events[1])
            time.sleep(float(body.get("delay", 1)))
            ex.write(b"".join(events[2:]))
        elif model == "stream-error":
            ex.write(events[0] + events[1] + _sse({"error": {"message": "the model crashed", "code": 500}}))
        elif body.get("burst"):
            ex.write(b"".join(events))
        else:
            for event in events:
                ex.write(event)
        ex.end_stream()

    def embeddings(ex: Exchange) -> None:
        body = ex.json
        if failure(ex, body["model"], body):
            return
        texts = [body["input"]] if isinstance(body["input"], str) else body["input"]
        size = int(body.get("dimensions") or 4)
        data = [
            {"object": "embedding", "index": i, "embedding": [float(len(text) + d) for d in range(size)]}
            for i, text in enumerate(texts)
        ]
        tokens = sum(len(text.split()) for text in texts)
        ex.send_json(
            200,
            {
                "object": "list",
                "data": data,
                "model": body["model"],
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            },
        )

    def images(ex: Exchange) -> None:
        body = ex.json
        if failure(ex, body["model"], body):
            return
        data = [
            {"url": f"http://127.0.0.1/{body['prompt'].replace(' ', '-')}-{i}.png"}
            for i in range(int(body.get("n") or 1))
        ]
        ex.send_json(200, {"created": 1700000000, "data": data})

    return {
        ("POST", "/v1/chat/completions"): chat,
        ("POST", "/v1/embeddings"): embeddings,
        ("POST", "/v1/images/generations"): images,
    }


# -- the torch-serve style app ----------------------------------------------------------------------
def torchserve_app(models: tuple[str, ...] = ("gpt-tiny",)) -> dict[tuple[str, str], Route]:
    def predict(ex: Exchange) -> None:
        model = ex.path.rsplit("/", 1)[1]
        if model not in models:
            ex.send_json(404, {"code": 404, "type": "ModelNotFoundException", "message": f"Model not found: {model}"})
            return
        body = ex.json
        text = f"you said: {body['prompt']}"
        if not body.get("stream"):
            ex.send_json(200, {"generated_text": text})
            return
        ex.start_stream("application/jsonl")
        for word in text.split(" "):
            ex.write(json.dumps({"token": word + " "}).encode() + b"\n")
        ex.write(json.dumps({"token": "", "finished": True}).encode() + b"\n")
        ex.end_stream()

    return {("POST", "/predictions/"): predict}
