"""Bad arguments fail fast with a BadRequestError that says what to pass, and are still in the call log."""

import asyncio

import pytest
from calllog_support import USER
from helpers import register

import llmkit
from llmkit.types.utils import ModelResponse


class Counting(llmkit.CustomLLM):
    """Answers every chat call, and counts them: a refused call must never reach the handler."""

    def __init__(self, answer=None):
        self.calls = 0
        self.answer = answer

    def completion(self, model, messages, **kwargs):
        self.calls += 1
        if self.answer is not None:
            return self.answer
        return ModelResponse(model=model, choices=[{"message": {"content": "ok"}}])

    def streaming(self, model, messages, **kwargs):
        self.calls += 1
        yield {"text": "ok", "is_finished": True, "finish_reason": "stop", "usage": None}


def calls(**kwargs):
    """The four ways to make a chat call, each a function of no arguments."""
    return [
        lambda: llmkit.completion(**kwargs),
        lambda: asyncio.run(llmkit.acompletion(**kwargs)),
        lambda: llmkit.completion(stream=True, **kwargs),
        lambda: asyncio.run(llmkit.acompletion(stream=True, **kwargs)),
    ]


@pytest.mark.parametrize(
    "messages, expected",
    [
        (42, "messages must be a list of chat messages such as .* got int: 42"),
        ("hi", r"not a string; to send 'hi' as one prompt, pass messages=\[\{'role': 'user', 'content': 'hi'\}\]"),
        ([{"content": "no role"}], r"messages\[0\] has no role"),
        ([{"role": "user", "content": "a"}, "b"], r"messages\[1\] has no role: 'b'"),
        ({"role": "user", "content": "a dict, not a list"}, "got dict"),
    ],
)
def test_messages_must_be_a_list_of_messages(log, messages, expected):
    handler = register(Counting())
    for call in calls(model="p/m", messages=messages):
        with pytest.raises(llmkit.BadRequestError, match=expected) as error:
            call()
        assert error.value.status_code == 400
    assert handler.calls == 0
    records = log.records()
    assert len(records) == 4 and {r["status"] for r in records} == {"error"}
    assert {r["error_type"] for r in records} == {"BadRequestError"} and {r["status_code"] for r in records} == {400}


def test_message_objects_with_a_role_are_accepted():
    register(Counting())
    history = [llmkit.ModelResponse(choices=[{"message": {"content": "earlier"}}]).choices[0].message]
    assert llmkit.completion(model="p/m", messages=[*USER, *history, *USER]).choices[0].message.content == "ok"
    assert llmkit.completion(model="p/m", messages=tuple(USER)).choices[0].message.content == "ok"
    assert llmkit.completion(model="p/m").choices[0].message.content == "ok"  # no messages: an empty list


@pytest.mark.parametrize(
    "params, expected",
    [
        ({"timeout": "5"}, r"timeout must be a positive number of seconds, got '5'; pass timeout=5 \(a number"),
        ({"timeout": 0}, "timeout must be a positive number of seconds, got 0; e.g. timeout=30"),
        ({"timeout": -1}, "got -1"),
        ({"timeout": float("nan")}, "got nan"),
        ({"timeout": True}, "got True"),
        ({"request_timeout": "soon"}, "request_timeout must be a positive number of seconds, got 'soon'"),
        ({"num_retries": "x"}, "num_retries must be a whole number, 0 or more, got 'x'; e.g. num_retries=2"),
        ({"num_retries": -3}, "got -3"),
        ({"num_retries": 1.5}, "got 1.5"),
        ({"max_retries": "2"}, "max_retries must be a whole number"),
    ],
)
def test_timeouts_and_retries_are_checked_before_the_handler_runs(log, params, expected):
    handler = register(Counting())
    for call in calls(model="p/m", messages=USER, **params):
        with pytest.raises(llmkit.BadRequestError, match=expected):
            call()
    for call in (
        lambda: llmkit.image_generation(prompt="x", model="demo/image", **params),
        lambda: llmkit.embedding(model="demo/embed", input="x", **params),
        lambda: llmkit.completion(model="p/m", messages=USER, mock_response="mocked", **params),
    ):
        with pytest.raises(llmkit.BadRequestError, match=expected):
            call()
    assert handler.calls == 0
    records = log.records()
    assert len(records) == 7 and {r["error_type"] for r in records} == {"BadRequestError"}


def test_good_timeouts_and_retries_pass():
    register(Counting())
    for params in ({"timeout": 5}, {"timeout": 0.5}, {"num_retries": 0}, {"num_retries": 2, "timeout": None}):
        assert llmkit.completion(model="p/m", messages=USER, **params).choices[0].message.content == "ok"


def test_a_handler_answer_that_is_no_model_response_names_the_handler_and_the_fix(log):
    handler = register(Counting(answer={"oops": 1}))
    with pytest.raises(llmkit.APIConnectionError) as error:
        llmkit.completion(model="p/m", messages=USER, num_retries=3)
    message = str(error.value)
    assert "Counting.completion() (provider 'p') returned a dict without a 'choices' list: {'oops': 1}" in message
    assert "a ModelResponse needs choices=[{'message': {'role': 'assistant', 'content':" in message
    assert handler.calls == 1  # a handler bug is not retried: it would answer the same again
    assert log.records()[0]["error_type"] == "APIConnectionError"


def test_a_dict_with_bad_choices_says_why_it_does_not_validate():
    register(Counting(answer={"choices": [{"message": "not a message"}]}))
    with pytest.raises(llmkit.APIConnectionError, match="returned a dict that does not validate"):
        llmkit.completion(model="p/m", messages=USER)


def test_an_unknown_provider_names_the_whole_model_string(log):
    with pytest.raises(llmkit.BadRequestError, match=r"^model 'nope/some-model': unknown provider 'nope'"):
        llmkit.completion(model="nope/some-model", messages=USER)
    with pytest.raises(llmkit.BadRequestError, match="model 'nope/pic': unknown provider 'nope'"):
        llmkit.image_generation(prompt="x", model="nope/pic")
    assert [r["model"] for r in log.records()] == ["nope/some-model", "nope/pic"]
