"""The proxy as a real server on a loopback port, driven by httpx and the official OpenAI client."""

from __future__ import annotations

import asyncio
import gc
import json
import signal
import socket
import subprocess
import sys
import textwrap
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import openai
import pytest
from proxy_support import free_port, llmkit_command, register, running_server, wait_until_serving, write_config

import llmkit
from llmkit import CustomLLM
from llmkit.proxy import server

ROOT = Path(__file__).resolve().parents[1]
SEED = ROOT / "examples" / "seed-proxy"
CONFIG = """\
model_list:
  - {model_name: echo, litellm_params: {model: demo/echo}}
  - {model_name: lorem, litellm_params: {model: demo/lorem, tokens_per_second: 0}}
  - {model_name: image, litellm_params: {model: demo/image}}
  - {model_name: embed, litellm_params: {model: demo/embed}}
  - {model_name: limited, litellm_params: {model: demo/fail, status_code: 429, message: slow down}}
  - {model_name: slow, litellm_params: {model: slow/m}}
general_settings: {master_key: test-key}
"""


class Slow(CustomLLM):
    """Streams a word every 20 ms; says when a call started and when its generator was closed."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.closed = threading.Event()

    async def acompletion(self, model, messages, **kwargs):
        self.started.set()
        await asyncio.sleep(0.3)
        return {"model": model, "choices": [{"message": {"content": "finished"}}]}

    async def astreaming(self, model, messages, **kwargs):
        self.started.set()
        try:
            for i in range(500):
                await asyncio.sleep(0.02)
                yield {"text": f"w{i} ", "is_finished": False, "finish_reason": None, "usage": None}
        finally:
            self.closed.set()


@pytest.fixture
def slow():
    handler = Slow()
    register(slow=handler)
    return handler


@pytest.fixture
def url(tmp_path, slow):
    with running_server(write_config(tmp_path, CONFIG)) as url:
        yield url


@pytest.fixture
def client(url):
    with openai.OpenAI(base_url=url + "/v1", api_key="test-key", max_retries=0) as client:
        yield client


def test_openai_client_chat_stream_images_embeddings_models(client):
    reply = client.chat.completions.create(model="echo", messages=[{"role": "user", "content": "hello proxy"}])
    assert reply.choices[0].message.content == "hello proxy"
    chunks = list(
        client.chat.completions.create(
            model="lorem",
            messages=[{"role": "user", "content": "x"}],
            stream=True,
            max_tokens=10,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert len(text.split()) == 10 and chunks[-1].usage.completion_tokens == 10
    image = client.images.generate(model="image", prompt="a sea otter", size="16x16")
    assert image.data[0].b64_json
    expected = llmkit.embedding(model="demo/embed", input=["a", "b"]).data[1].embedding
    vectors = client.embeddings.create(model="embed", input=["a", "b"], encoding_format="float")
    assert [item.index for item in vectors.data] == [0, 1] and vectors.data[1].embedding == expected
    # the client asks for base64 by default: float32 on the wire, decoded by the client
    packed = client.embeddings.create(model="embed", input=["a", "b"]).data[1].embedding
    assert packed == pytest.approx(expected, rel=1e-6) and packed != expected
    assert {model.id for model in client.models.list()} == {"echo", "lorem", "image", "embed", "limited", "slow"}


def test_errors_arrive_as_openai_exception_classes(client, url):
    with pytest.raises(openai.RateLimitError, match="slow down"):
        client.chat.completions.create(model="limited", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.NotFoundError, match="available models: echo"):
        client.chat.completions.create(model="gpt-9", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.BadRequestError, match="messages"):
        client.chat.completions.create(model="echo", messages=[])
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=url + "/v1", api_key="wrong", max_retries=0).models.list()
    stream = client.chat.completions.create(
        model="lorem",
        messages=[{"role": "user", "content": "x"}],
        stream=True,
        extra_body={"fail_after": 2, "status_code": 500},
    )
    with pytest.raises(openai.APIError, match="broke its stream after 2 words"):
        list(stream)


def test_health_needs_no_key(url):
    assert httpx.get(url + "/health").json() == {"status": "healthy"}
    assert httpx.get(url + "/health/readiness").status_code == 200
    assert httpx.get(url + "/v1/models").status_code == 401


def test_concurrent_load_has_no_errors(url):
    # 64 threads with a client each: httpx's async pool is slow at this concurrency, threads are not.
    local, clients = threading.local(), []

    def one(i: int) -> int:
        if not hasattr(local, "client"):
            local.client = httpx.Client(base_url=url, headers={"Authorization": "Bearer test-key"})
            clients.append(local.client)
        body = {"model": "echo", "messages": [{"role": "user", "content": f"n{i}"}]}
        response = local.client.post("/v1/chat/completions", json=body)
        assert response.json()["choices"][0]["message"]["content"] == f"n{i}"  # no cross-talk
        return response.status_code

    with ThreadPoolExecutor(max_workers=64) as pool:
        statuses = list(pool.map(one, range(2000)))
    for client in clients:
        client.close()
    assert statuses.count(200) == 2000


def test_client_disconnect_stops_the_handler(url, slow):
    body = {"model": "slow", "messages": [{"role": "user", "content": "x"}], "stream": True}
    with httpx.Client(headers={"Authorization": "Bearer test-key"}) as client:
        with client.stream("POST", url + "/v1/chat/completions", json=body) as response:
            first = next(response.iter_lines())
            assert first.startswith("data: ")
    assert slow.closed.wait(timeout=5), "the handler's stream was not closed after the client left"


def test_graceful_shutdown_finishes_requests_in_flight(tmp_path, slow):
    results = []
    with running_server(write_config(tmp_path, CONFIG)) as url:

        def request() -> None:
            body = {"model": "slow", "messages": [{"role": "user", "content": "x"}]}
            results.append(
                httpx.post(
                    url + "/v1/chat/completions", json=body, headers={"Authorization": "Bearer test-key"}, timeout=10
                )
            )

        thread = threading.Thread(target=request)
        thread.start()
        assert slow.started.wait(timeout=5)
    # leaving running_server asked the server to exit while the request was in flight
    thread.join(timeout=10)
    (response,) = results
    assert response.status_code == 200 and response.json()["choices"][0]["message"]["content"] == "finished"


# -- the seed guide's proxy section, through the real command ----------------------------------------
@pytest.fixture
def seed_server(tmp_path):
    def start(*args: str) -> tuple[subprocess.Popen, str]:
        port = free_port()
        command = [*llmkit_command(), *args, str(SEED / "config.yaml"), "--host", "127.0.0.1", "--port", str(port)]
        process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
        started.append(process)
        url = f"http://127.0.0.1:{port}"
        wait_until_serving(process, url)
        return process, url

    started: list[subprocess.Popen] = []
    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.mark.parametrize("spelling", [["serve", "--config"], ["--config"]])
def test_seed_guide_curl_requests(seed_server, spelling):
    process, url = seed_server(*spelling)
    headers = {"Content-Type": "application/json", "Authorization": "Bearer sk-1234"}
    body = (
        '{"model": "my-custom-model", "messages": [{"role": "user", "content": "Say \\"this is a test\\" in JSON!"}]}'
    )
    reply = httpx.post(url + "/chat/completions", headers=headers, content=body).json()
    assert set(reply) == {"id", "choices", "created", "model", "object", "system_fingerprint", "usage"}
    assert reply["id"].startswith("chatcmpl-") and isinstance(reply["created"], int)
    assert reply["choices"] == [
        {
            "finish_reason": "stop",
            "index": 0,
            "message": {"content": "Hi!", "role": "assistant", "tool_calls": None, "function_call": None},
        }
    ]
    assert (reply["model"], reply["object"], reply["system_fingerprint"]) == ("gpt-3.5-turbo", "chat.completion", None)
    assert reply["usage"] == {"prompt_tokens": 10, "completion_tokens": 20, "total_tokens": 30}

    image_body = '{"model": "my-custom-model", "prompt": "A cute baby sea otter"}'
    image = httpx.post(url + "/v1/images/generations", headers=headers, content=image_body).json()
    assert set(image) == {"created", "data"} and isinstance(image["created"], int)
    assert image["data"] == [{"url": "https://example.com/image.png"}]

    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=20) == 0  # drained, log flushed, a clean exit (not uvicorn re-raising the signal)
    assert "llmkit proxy: http://127.0.0.1" in process.stderr.read()


def test_import_llmkit_loads_no_server_stack():
    code = textwrap.dedent("""
        import sys, llmkit
        heavy = [m for m in ("starlette", "uvicorn", "yaml", "llmkit.proxy") if m in sys.modules]
        print(json.dumps(heavy))
    """).replace("import sys", "import json, sys")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == []


def test_a_server_process_collects_young_garbage_less_often_and_never_walks_its_start_up_objects():
    """What serving sets up for the garbage collector (see server.run), seen from inside serving."""
    seen = {}

    class Recording:
        def run(self, sockets):
            seen["threshold"] = gc.get_threshold()
            seen["frozen"] = gc.get_freeze_count()

    before = gc.get_threshold()
    try:
        with socket.socket() as sock:
            server.run(Recording(), sock)
    finally:
        gc.set_threshold(*before)
        gc.unfreeze()
    assert seen["threshold"] == (server.YOUNG_COLLECTION, *before[1:])
    assert seen["frozen"] > 1000  # modules, schemas and the app, kept out of every collection
