"""llmkit.check on good handlers (demo, openai on a loopback server, an HTTPLLM) and broken ones."""

import asyncio
import time

import pytest
from fake_servers import FakeServer, openai_app, torchserve_app
from test_http_helpers import TorchServe

import llmkit
from llmkit import CustomLLM, CustomLLMError, ModelResponse


def statuses(report):
    return {row.check: row.status for row in report.rows}


class Echo(CustomLLM):
    """A correct handler: sync and async, whole and streamed, errors with status codes."""

    def _answer(self, model, messages):
        if model != "echo":
            raise CustomLLMError(404, f"no model {model!r}")
        return messages[-1]["content"]

    def completion(self, model, messages, **kwargs):
        return ModelResponse(model=model, choices=[{"message": {"content": self._answer(model, messages)}}])

    async def acompletion(self, model, messages, **kwargs):
        await asyncio.sleep(0.01)
        return self.completion(model, messages)

    def streaming(self, model, messages, **kwargs):
        text = self._answer(model, messages)
        yield {"text": text, "is_finished": False, "finish_reason": None, "usage": None}
        yield {
            "text": "",
            "is_finished": True,
            "finish_reason": "stop",
            "usage": {"prompt_tokens": 1, "completion_tokens": 1},
        }

    async def astreaming(self, model, messages, **kwargs):
        for chunk in self.streaming(model, messages):
            yield chunk


def test_a_correct_handler_passes_every_row():
    report = llmkit.check(Echo(), "echo")
    assert report.ok, str(report)
    rows = statuses(report)
    for name in (
        "completion",
        "acompletion",
        "streaming",
        "astreaming",
        "completion = acompletion",
        "streaming = astreaming",
        "errors",
        "concurrency",
    ):
        assert rows[name] == "pass", (name, str(report))
    assert rows["image_generation"] == "skip" and rows["embedding"] == "skip"
    assert rows["usage"] == "warn"  # completion() reports no usage
    assert "each with its own answer" in report["concurrency"].detail
    assert "CustomLLMError(404)" in report["errors"].detail


def test_the_demo_provider_passes_by_name():
    report = llmkit.check("demo/echo", image_model="image", embedding_model="embed")
    assert report.ok, str(report)
    assert set(statuses(report).values()) == {"pass"}


@pytest.mark.parametrize("target", ["demo/echo", "demo", "demo/image", "demo/lorem"])
def test_the_built_ins_pass_with_the_models_they_list(target):
    # Each method is asked of a model of its kind: no images from a chat model, no chat from "default".
    report = llmkit.check(target, tokens_per_second=0)
    assert report.ok, str(report)
    assert set(statuses(report).values()) == {"pass"}, str(report)
    assert report.title.endswith("image model 'image', embedding model 'embed'")


class Listed(CustomLLM):
    models = ("chat-a",)
    embedding_models = ("vec",)
    image_models = ()

    def completion(self, model, messages, **kwargs):
        assert model == "chat-a", model
        return ModelResponse(model=model, choices=[{"message": {"content": "hi"}}])

    def embedding(self, model, input, **kwargs):
        assert model == "vec", model
        return llmkit.EmbeddingResponse(model=model, data=[{"embedding": [1.0], "index": i} for i in range(len(input))])

    def image_generation(self, model, prompt, **kwargs):
        raise AssertionError("the handler lists no image models: none should be asked for")


def test_a_handler_that_lists_its_models_is_checked_with_them():
    report = llmkit.check(Listed())
    assert report["completion"].status == "pass" and report["embedding"].status == "pass", str(report)
    assert report["image_generation"].status == "skip"
    assert "lists no image models; pass image_model=" in report["image_generation"].detail
    assert llmkit.check(Listed(), image_model="pic")["image_generation"].status == "fail"  # asked, as told


class CompletionOnly(CustomLLM):
    def completion(self, model, messages, **kwargs):
        return ModelResponse(model=model, choices=[{"message": {"content": "whole"}}])


def test_a_completion_only_handler_is_told_that_streaming_works_and_the_rest_is_a_404():
    report = llmkit.check(CompletionOnly(), "m")
    assert report.ok, str(report)
    for method in ("streaming", "astreaming"):
        assert report[method].status == "skip"
        assert "stream=True works all the same: llmkit streams completion()'s whole answer" in report[method].detail
    for method in ("image_generation", "aimage_generation", "embedding", "aembedding"):
        assert "NotFoundError (404) naming the method" in report[method].detail
    llmkit.register_provider("whole", CompletionOnly())
    assert llmkit.completion("whole/m", [{"role": "user", "content": "x"}], stream=True).text() == "whole"


def test_the_openai_provider_passes_against_a_loopback_server():
    with FakeServer(openai_app()) as srv:
        report = llmkit.check("openai/echo", api_base=srv.url + "/v1")
    assert report.ok, str(report)
    rows = statuses(report)
    assert all(rows[m] == "pass" for m in ("completion", "astreaming", "aimage_generation", "aembedding"))
    assert rows["usage"] == "pass"
    assert rows["errors"] == "skip"  # the fake server answers any model name


def test_an_http_helper_handler_passes_with_its_servers_404():
    with FakeServer(torchserve_app()) as srv:
        report = llmkit.check(TorchServe(api_base=srv.url), "gpt-tiny")
    assert report.ok, str(report)
    assert report["errors"].status == "pass" and "Model not found" in report["errors"].detail
    assert report["streaming"].status == "pass"


class WrongType(CustomLLM):
    def completion(self, model, messages, **kwargs):
        return "just a string"


def test_a_wrong_return_type_fails_with_the_fix():
    report = llmkit.check(WrongType(), "m")
    assert not report.ok
    assert report["completion"].status == "fail"
    assert "completion() returned str; return a ModelResponse" in report["completion"].detail


class BadChunks(CustomLLM):
    def streaming(self, model, messages, **kwargs):
        yield {"text": "hello"}


class NoFinish(CustomLLM):
    def streaming(self, model, messages, **kwargs):
        yield {"text": "hello", "is_finished": False, "finish_reason": None, "usage": None}


class SeedGuideStream(CustomLLM):
    def streaming(self, model, messages, **kwargs):
        return {"text": "hello", "is_finished": True, "finish_reason": "stop", "usage": None, "index": 0}


def test_stream_contract_problems_are_named():
    assert "lacks is_finished, finish_reason" in llmkit.check(BadChunks(), "m")["streaming"].detail
    no_finish = llmkit.check(NoFinish(), "m")["streaming"]
    assert no_finish.status == "fail" and "last chunk has no finish_reason" in no_finish.detail
    single = llmkit.check(SeedGuideStream(), "m")["streaming"]
    assert single.status == "warn" and "one dict, not an iterator" in single.detail


class BareErrors(Echo):
    def completion(self, model, messages, **kwargs):
        return ModelResponse(choices=[{"message": {"content": {"echo": "hi"}[model]}}])  # KeyError for others


def test_an_error_without_a_status_code_fails_the_errors_row():
    row = llmkit.check(BareErrors(), "echo")["errors"]
    assert row.status == "fail"
    assert "raised KeyError" in row.detail and "raise CustomLLMError(status_code, message)" in row.detail


class BlocksTheLoop(Echo):
    async def acompletion(self, model, messages, **kwargs):
        time.sleep(0.4)  # noqa: ASYNC251 - the bug this handler is made to show: a blocking call in async code
        return self.completion(model, messages)


def test_an_async_handler_that_blocks_the_loop_fails_concurrency():
    row = llmkit.check(BlocksTheLoop(), "echo", concurrency=2)["concurrency"]
    assert row.status == "fail" and "blocked the event loop" in row.detail


class SharedState(Echo):
    async def acompletion(self, model, messages, **kwargs):
        self.prompt = messages[-1]["content"]  # the bug: per-call state on the shared handler
        await asyncio.sleep(0.02)
        return ModelResponse(choices=[{"message": {"content": self.prompt}}])


def test_per_call_state_on_self_is_caught_under_concurrency():
    row = llmkit.check(SharedState(), "echo")["concurrency"]
    assert row.status == "fail" and "answered another call's prompt" in row.detail


def test_the_report_prints_and_renders_as_a_table():
    report = llmkit.check(NoFinish(), "m")
    text = str(report)
    assert text.splitlines()[0] == "llmkit.check: NoFinish (NoFinish), model 'm'"
    assert any(line.startswith("FAIL  streaming") for line in text.splitlines())
    assert text.splitlines()[-1] == "1 warn, 1 fail, 8 skip — see FAIL rows"
    page = report._repr_html_()
    assert page.count("<tr>") == len(report.rows) + 1
    assert "model &#x27;m&#x27;" in page  # text is escaped for HTML


def test_bad_targets_say_what_to_pass():
    with pytest.raises(TypeError, match="pass Echo\\(\\)"):
        llmkit.check(Echo)
    with pytest.raises(llmkit.BadRequestError, match="unknown provider 'nope'"):
        llmkit.check("nope/model")


def test_check_is_exported_lazily():
    import llmkit.checker

    assert llmkit.check is llmkit.checker.check
    assert "check" in llmkit.__all__ and llmkit.__all__ == sorted(llmkit.__all__)
