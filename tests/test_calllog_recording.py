"""Every call, from every entry point and with every outcome, is recorded exactly once."""

import asyncio
import gc
import threading
import warnings

import pytest
from calllog_support import USER, Interrupted, NoUsage, Slow, use, watch_builds

import llmkit


def only(log, **filters):
    records = log.records(**filters)
    assert len(records) == 1, records
    return records[0]


# -- chat ---------------------------------------------------------------------------------------------
def test_sync_chat_ok_records_every_field(log):
    messages = list(USER)
    llmkit.completion(
        model="demo/echo", messages=messages, temperature=0.2, metadata={"team": "search"},
        api_key="sk-SECRET-123", headers={"Authorization": "Bearer SECRET-456"},
    )  # fmt: skip
    messages.append({"role": "assistant", "content": "changed later"})  # must not change the record
    record = only(log)
    assert record["model"] == "demo/echo"
    assert (record["provider"], record["handler_model"], record["kind"]) == ("demo", "echo", "chat")
    assert record["source"] == "python"
    assert record["messages"] == USER
    assert record["prompt"] == "hello there"
    assert record["params"] == {"temperature": 0.2}
    assert record["response"] == "hello there"
    assert record["finish_reason"] == "stop"
    assert record["status"] == "ok" and record["error_type"] is None
    assert record["prompt_tokens"] > 0 and record["completion_tokens"] > 0
    assert record["total_tokens"] == record["prompt_tokens"] + record["completion_tokens"]
    assert record["tokens_estimated"] is False
    assert record["latency_ms"] > 0 and record["ttft_ms"] is None
    assert record["tokens_per_s"] > 0
    assert record["cost_usd"] is None
    assert record["metadata"] == {"team": "search"}
    assert len(record["call_id"]) == 32 and record["run_id"] is None


def test_keys_and_auth_headers_never_reach_the_file(log, tmp_path):
    llmkit.completion(model="demo/echo", messages=USER, api_key="sk-SECRET-123", extra_headers={"X-Key": "SECRET-789"})
    llmkit.completion(model="demo/echo", messages=USER, stream=True, api_key="sk-SECRET-123").text()
    llmkit.completion(
        model="demo/echo", messages=USER, aws_secret_access_key="SECRET-1", extra_body={"api_key": "SECRET-2"},
        max_tokens=5,
    )  # fmt: skip
    log.flush()
    raw = b"".join(path.read_bytes() for path in tmp_path.iterdir())
    assert len(log) == 3
    assert b"SECRET" not in raw
    assert log.last()[0]["params"] == {
        "aws_secret_access_key": "<redacted>",
        "extra_body": {"api_key": "<redacted>"},
        "max_tokens": 5,
    }


def test_async_chat_ok(log):
    asyncio.run(llmkit.acompletion(model="demo/echo", messages=USER))
    record = only(log)
    assert (record["kind"], record["status"], record["response"]) == ("chat", "ok", "hello there")


def test_error_keeps_class_status_and_message(log):
    with pytest.raises(llmkit.RateLimitError):
        llmkit.completion(model="demo/fail", messages=USER, status_code=429, message="slow down")
    record = only(log)
    assert record["status"] == "error"
    assert (record["error_type"], record["status_code"], record["error_message"]) == (
        "RateLimitError",
        429,
        "slow down",
    )
    assert record["response"] is None and record["prompt_tokens"] is None


def test_a_call_that_fails_before_reaching_a_handler_is_recorded(log):
    with pytest.raises(llmkit.BadRequestError):
        llmkit.completion(model="nowhere/model", messages=USER)
    record = only(log)
    assert (record["status"], record["provider"], record["error_type"]) == ("error", "nowhere", "BadRequestError")


def test_cancelled_async_call(log):
    use("slow", Slow())

    async def main():
        task = asyncio.ensure_future(llmkit.acompletion(model="slow/m", messages=USER))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    record = only(log)
    assert (record["status"], record["error_type"]) == ("cancelled", "CancelledError")


def test_missing_usage_is_estimated_and_marked(log):
    use("quiet", NoUsage())
    llmkit.completion(model="quiet/m", messages=USER)
    llmkit.completion(model="quiet/m", messages=USER, stream=True).text()
    for record in log.records():
        assert record["tokens_estimated"] is True
        assert record["completion_tokens"] >= 4 and record["prompt_tokens"] > 0


# -- streams ------------------------------------------------------------------------------------------
def test_exhausted_stream_has_time_to_first_token(log):
    text = llmkit.completion(
        model="demo/lorem", messages=USER, stream=True, max_tokens=12, tokens_per_second=400
    ).text()
    record = only(log)
    assert (record["kind"], record["status"], record["response"]) == ("stream", "ok", text)
    assert record["params"] == {"max_tokens": 12, "tokens_per_second": 400, "stream": True}
    assert 0 < record["ttft_ms"] < record["latency_ms"]
    assert record["completion_tokens"] == 12 and record["tokens_estimated"] is False
    assert record["finish_reason"] == "stop"


def test_stream_closed_midway_is_cancelled_with_what_arrived(log):
    stream = llmkit.completion(model="demo/lorem", messages=USER, stream=True, max_tokens=30, tokens_per_second=0)
    received = [next(stream).choices[0].delta.content for _ in range(3)]
    stream.close()
    stream.close()  # closing twice records nothing more
    record = only(log)
    assert record["status"] == "cancelled"
    assert record["response"] == "".join(received)
    assert "closed by the caller after 3 chunk(s)" in record["error_message"]
    assert record["tokens_estimated"] is True and record["completion_tokens"] >= 3


def test_stream_dropped_unfinished_is_cancelled(log):
    stream = llmkit.completion(model="demo/lorem", messages=USER, stream=True, max_tokens=30, tokens_per_second=0)
    for i, _ in enumerate(stream):
        if i == 1:
            break
    del stream
    gc.collect()
    record = only(log)
    assert record["status"] == "cancelled" and "dropped unfinished after 2" in record["error_message"]


def test_stream_broken_by_an_error_keeps_the_partial_answer(log):
    stream = llmkit.completion(
        model="demo/lorem", messages=USER, stream=True, tokens_per_second=0, fail_after=3, status_code=503
    )
    with pytest.raises(llmkit.ServiceUnavailableError):
        for _ in stream:
            pass
    record = only(log)
    assert (record["status"], record["status_code"], record["error_type"]) == ("error", 503, "ServiceUnavailableError")
    assert len(record["response"].split()) == 3


def test_keyboard_interrupt_during_a_stream(log):
    use("ctrlc", Interrupted())
    stream = llmkit.completion(model="ctrlc/m", messages=USER, stream=True)
    with pytest.raises(KeyboardInterrupt):
        for _ in stream:
            pass
    del stream
    record = only(log)
    assert (record["status"], record["error_type"], record["response"]) == (
        "cancelled",
        "KeyboardInterrupt",
        "partial answer",
    )


def test_async_stream_cancelled_midway(log):
    use("slow", Slow())
    got = []

    async def consume(three):
        stream = await llmkit.acompletion(model="slow/m", messages=USER, stream=True)
        async for chunk in stream:
            got.append(chunk.choices[0].delta.content)
            if len(got) == 3:
                three.set()

    async def main():
        three = asyncio.Event()
        task = asyncio.ensure_future(consume(three))
        await three.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    record = only(log)
    assert (record["status"], record["error_type"], record["response"]) == (
        "cancelled",
        "CancelledError",
        "one two three ",
    )
    assert record["ttft_ms"] is not None


def test_async_stream_exhausted(log):
    async def main():
        stream = await llmkit.acompletion(model="demo/echo", messages=USER, stream=True)
        return await stream.atext()

    assert asyncio.run(main()) == "hello there"
    record = only(log)
    assert (record["kind"], record["status"], record["response"]) == ("stream", "ok", "hello there")


# -- other kinds, mocks, sources ------------------------------------------------------------------
def test_images_record_sizes_not_data(log):
    llmkit.image_generation("a cat", model="demo/image", n=2)
    llmkit.image_generation("a dog", model="demo/image", response_format="url")
    b64, url = log.records()
    assert (b64["kind"], b64["prompt"], b64["messages"]) == ("image", "a cat", None)
    assert b64["response"].count("<b64_json, ") == 2
    assert url["response"].startswith("<data URL, ")
    assert b64["prompt_tokens"] is None


def test_async_image_and_embeddings(log):
    asyncio.run(llmkit.aimage_generation("a cat", model="demo/image"))
    llmkit.embedding("demo/embed", input=["a b", "c"], dimensions=8)
    asyncio.run(llmkit.aembedding("demo/embed", input="x"))
    image, emb, aemb = log.records()
    assert image["kind"] == "image" and image["status"] == "ok"
    assert (emb["kind"], emb["prompt"], emb["response"]) == ("embedding", "a b\nc", "2 embedding(s) of 8 dimensions")
    assert emb["prompt_tokens"] > 0 and emb["params"] == {"dimensions": 8}
    assert aemb["kind"] == "embedding" and aemb["status"] == "ok"


def test_image_error_is_recorded(log):
    with pytest.raises(llmkit.BadRequestError):
        llmkit.image_generation("a cat", model="demo/image", size="huge")
    assert only(log)["status_code"] == 400


def test_mock_responses_are_recorded(log):
    llmkit.completion(model="gpt-4o", messages=USER, mock_response="mocked!")
    llmkit.completion(model="gpt-4o", messages=USER, mock_response="a mocked stream", stream=True).text()
    with pytest.raises(llmkit.RateLimitError):
        llmkit.completion(model="gpt-4o", messages=USER, mock_response="llmkit.RateLimitError")
    chat, stream, error = log.records()
    assert (chat["response"], chat["model"], chat["provider"]) == ("mocked!", "gpt-4o", None)
    assert (stream["kind"], stream["response"]) == ("stream", "a mocked stream")
    assert (error["status"], error["status_code"]) == ("error", 429)


@pytest.mark.parametrize("source", ["magic", "widget", "batch", "proxy"])
def test_source_is_recorded(log, source):
    llmkit.completion(model="demo/echo", messages=USER, source=source)
    assert only(log)["source"] == source


def test_each_call_once_and_ids_unique(log):
    for _ in range(5):
        llmkit.completion(model="demo/echo", messages=USER)
    stream = llmkit.completion(model="demo/echo", messages=USER, stream=True)
    stream.text()
    stream.close()
    del stream
    gc.collect()
    records = log.records()
    assert len(records) == 6
    assert len({r["call_id"] for r in records}) == 6


# -- cost ------------------------------------------------------------------------------------------
def test_cost_from_registered_prices(log):
    llmkit.register_model_cost("demo/echo", input_cost_per_token=0.001, output_cost_per_token=0.002)
    llmkit.register_model_cost("lorem", input_cost_per_token=0.01)  # a bare handler model name works too
    llmkit.completion(model="demo/echo", messages=USER)
    llmkit.completion(model="demo/lorem", messages=USER, max_tokens=5, tokens_per_second=0)
    llmkit.completion(model="demo/fail", messages=USER, mock_response="unpriced")
    echo, lorem, unpriced = log.records()
    assert echo["cost_usd"] == pytest.approx(echo["prompt_tokens"] * 0.001 + echo["completion_tokens"] * 0.002)
    assert lorem["cost_usd"] == pytest.approx(lorem["prompt_tokens"] * 0.01)
    assert unpriced["cost_usd"] is None


@pytest.mark.parametrize(
    "args, kwargs",
    [(("",), {}), (("m",), {"input_cost_per_token": -1}), (("m",), {"output_cost_per_token": "cheap"})],
)
def test_bad_prices_are_refused(args, kwargs):
    with pytest.raises(ValueError):
        llmkit.register_model_cost(*args, **kwargs)


# -- callbacks and capture ---------------------------------------------------------------------------
def test_sync_and_async_callbacks_get_the_record(log):
    seen = []

    @log.on_success
    def ok(record):
        seen.append(("ok", record["model"]))

    async def failed(record):
        await asyncio.sleep(0)
        seen.append(("failed", record["status_code"]))

    log.on_failure(failed)
    llmkit.completion(model="demo/echo", messages=USER)
    with pytest.raises(llmkit.APIError):
        llmkit.completion(model="demo/fail", messages=USER, status_code=502)
    log.flush()
    assert sorted(seen) == [("failed", 502), ("ok", "demo/echo")]
    log.remove_callback(ok)
    llmkit.completion(model="demo/echo", messages=USER)
    log.flush()
    assert len(seen) == 2


def test_a_raising_callback_warns_once_and_never_breaks_the_call(log):
    def broken(record):
        raise ValueError("oops")

    log.on_success(broken)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(3):
            assert llmkit.completion(model="demo/echo", messages=USER).choices[0].message.content == "hello there"
            log.flush()
    messages = [str(w.message) for w in caught if "broken" in str(w.message)]
    assert len(messages) == 1 and "ValueError: oops" in messages[0]
    assert len(log) == 3


def test_callbacks_fire_when_the_log_is_off(tmp_path):
    from llmkit.calllog import configure_log, recorder

    configure_log("off")
    try:
        seen = []
        llmkit.calls.on_success(lambda record: seen.append(record["response"]))
        llmkit.completion(model="demo/echo", messages=USER)
        llmkit.calls.flush()
        assert seen == ["hello there"]
        assert llmkit.calls.records() == []
    finally:
        recorder.callbacks.clear()
        configure_log()


def test_capture_collects_calls_and_tags_them_with_a_run_id(log):
    llmkit.completion(model="demo/echo", messages=USER)
    with log.capture(run_id="run-1") as run:
        llmkit.completion(model="demo/echo", messages=[{"role": "user", "content": "inside"}])
    assert [r["response"] for r in run.records] == ["inside"]
    assert [r["response"] for r in log.records(run_id="run-1")] == ["inside"]
    assert run.records[0]["call_id"] == log.last()[0]["call_id"]


def test_off_records_nothing():
    from llmkit.calllog import configure_log, recorder

    configure_log("off")
    try:
        assert recorder.begin("chat", "demo/echo", [], {}) is None
        llmkit.completion(model="demo/echo", messages=USER)
        assert llmkit.calls.records() == [] and len(llmkit.calls) == 0
    finally:
        configure_log()


def test_a_record_that_cannot_be_built_costs_only_itself(log, monkeypatch):
    from llmkit.calllog import recorder

    real = recorder.build_record

    def fragile(entry):
        if entry.model == "demo/lorem":
            raise RuntimeError("unexpected shape")
        return real(entry)

    monkeypatch.setattr(recorder, "build_record", fragile)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        llmkit.completion(model="demo/lorem", messages=USER, tokens_per_second=0)
        llmkit.completion(model="demo/echo", messages=USER)
        assert [r["model"] for r in log.records()] == ["demo/echo"]
    assert any("could not record a call to 'demo/lorem'" in str(w.message) for w in caught)


def test_embeddings_without_usage_are_estimated(log):
    class Vectors(llmkit.CustomLLM):
        def embedding(self, model, input, **kwargs):
            return llmkit.EmbeddingResponse(model=model, data=[{"embedding": [0.1, 0.2]}])

    use("vec", Vectors())
    llmkit.embedding("vec/m", input="some words to embed")
    record = only(log)
    assert record["tokens_estimated"] is True and record["prompt_tokens"] >= 4
    assert record["response"] == "1 embedding(s) of 2 dimensions"


def test_an_async_callback_may_read_the_log(log):
    seen = []

    async def look(record):
        seen.append(log.last()[0]["call_id"] == record["call_id"])

    log.on_success(look)
    llmkit.completion(model="demo/echo", messages=USER)
    log.flush()
    assert seen == [True]


def test_keyboard_interrupt_during_a_plain_call(log):
    class CtrlC(llmkit.CustomLLM):
        def completion(self, model, messages, **kwargs):
            raise KeyboardInterrupt

    use("ctrlc", CtrlC())
    with pytest.raises(KeyboardInterrupt):
        llmkit.completion(model="ctrlc/m", messages=USER)
    record = only(log)
    assert (record["status"], record["error_type"], record["kind"]) == ("cancelled", "KeyboardInterrupt", "chat")


# -- building on an event loop (what the proxy does) ---------------------------------------------------
def test_an_event_loop_builds_the_records_of_its_calls_between_them(tmp_path, monkeypatch):
    from llmkit.calllog import configure_log, recorder

    configure_log("sqlite", path=tmp_path / "calls.db", flush_interval=3600)  # the writer stays asleep
    built_on = watch_builds(monkeypatch)

    async def calls() -> None:
        builder = asyncio.create_task(recorder.build_on_loop(every=0.001, at_once=8))
        await asyncio.sleep(0)  # started, as a server's is before its first request
        for i in range(20):
            await llmkit.acompletion(model="demo/echo", messages=[{"role": "user", "content": f"call {i}"}])
        for _ in range(500):
            if len(built_on) == 20:
                break
            await asyncio.sleep(0.01)
        builder.cancel()

    try:
        asyncio.run(calls())
        assert built_on == [threading.main_thread()] * 20  # each once, on the loop's thread, none left to the writer
        assert recorder._to_build is None  # a cancelled builder collects nothing more
        assert sorted(r["prompt"] for r in llmkit.calls.records()) == sorted(f"call {i}" for i in range(20))
    finally:
        configure_log()


def test_a_record_the_loop_cannot_build_is_left_to_the_writer(tmp_path, monkeypatch):
    from llmkit.calllog import configure_log, recorder

    configure_log("sqlite", path=tmp_path / "calls.db", flush_interval=3600)
    real, attempts = recorder.build_record, []

    def fails_once(entry):
        attempts.append(entry.model)
        if len(attempts) == 1:
            raise RuntimeError("a passing fault")
        return real(entry)

    monkeypatch.setattr(recorder, "build_record", fails_once)

    async def one_call() -> None:
        builder = asyncio.create_task(recorder.build_on_loop(every=0.001))
        await asyncio.sleep(0)
        await llmkit.acompletion(model="demo/echo", messages=USER)
        for _ in range(500):
            if attempts:
                break
            await asyncio.sleep(0.01)
        builder.cancel()

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # the loop's failure is silent: the writer's second try works
            asyncio.run(one_call())
            assert [r["model"] for r in llmkit.calls.records()] == ["demo/echo"]
        assert attempts == ["demo/echo", "demo/echo"]
    finally:
        configure_log()
