"""Handler errors reach the caller as the class for their status code, on every path."""

import asyncio
import pickle

import pytest
from helpers import register

import llmkit

TABLE = [
    (400, llmkit.BadRequestError),
    (401, llmkit.AuthenticationError),
    (403, llmkit.PermissionDeniedError),
    (404, llmkit.NotFoundError),
    (408, llmkit.Timeout),
    (418, llmkit.BadRequestError),
    (422, llmkit.UnprocessableEntityError),
    (429, llmkit.RateLimitError),
    (500, llmkit.InternalServerError),
    (502, llmkit.BadGatewayError),
    (503, llmkit.ServiceUnavailableError),
    (504, llmkit.Timeout),
    (507, llmkit.APIError),
]


class Failing(llmkit.CustomLLM):
    def __init__(self, error):
        self.error = error

    def completion(self, **kwargs):
        raise self.error

    async def acompletion(self, **kwargs):
        raise self.error

    def streaming(self, **kwargs):
        raise self.error

    async def astreaming(self, **kwargs):
        raise self.error
        yield

    def image_generation(self, **kwargs):
        raise self.error

    async def aimage_generation(self, **kwargs):
        raise self.error

    def embedding(self, **kwargs):
        raise self.error


async def _consume(stream):
    return [c async for c in await stream]


PATHS = {
    "completion": lambda: llmkit.completion(model="p/m", messages=[]),
    "acompletion": lambda: asyncio.run(llmkit.acompletion(model="p/m", messages=[])),
    "stream": lambda: list(llmkit.completion(model="p/m", messages=[], stream=True)),
    "astream": lambda: asyncio.run(_consume(llmkit.acompletion(model="p/m", messages=[], stream=True))),
    "image": lambda: llmkit.image_generation(model="p/m", prompt="x"),
    "aimage": lambda: asyncio.run(llmkit.aimage_generation(model="p/m", prompt="x")),
    "embedding": lambda: llmkit.embedding(model="p/m", input="x"),
}


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("status, cls", TABLE)
def test_custom_llm_error_maps_by_status_code_on_every_path(path, status, cls):
    original = llmkit.CustomLLMError(status, f"failed with {status}")
    register(Failing(original))
    with pytest.raises(cls) as error:
        PATHS[path]()
    assert type(error.value) is cls
    assert error.value.status_code == status
    assert error.value.message == f"failed with {status}"
    assert (error.value.llm_provider, error.value.model) == ("p", "m")
    assert error.value.__cause__ is original
    assert "p/m" in str(error.value) and str(status) in str(error.value)


@pytest.mark.parametrize("path", PATHS)
def test_an_exception_without_a_status_is_a_connection_error_naming_its_type(path):
    register(Failing(ValueError("bad value")))
    with pytest.raises(llmkit.APIConnectionError, match="ValueError: bad value") as error:
        PATHS[path]()
    assert error.value.status_code == 500 and isinstance(error.value.__cause__, ValueError)


def test_any_exception_with_a_status_code_attribute_maps_like_custom_llm_error():
    class HTTPStatusLike(Exception):
        def __init__(self):
            super().__init__("upstream said 503")
            self.status_code = 503

    register(Failing(HTTPStatusLike()))
    with pytest.raises(llmkit.ServiceUnavailableError, match="upstream said 503"):
        llmkit.completion(model="p/m", messages=[])


def test_every_error_class_is_an_api_error_and_an_llmkit_error():
    for _, cls in TABLE:
        assert issubclass(cls, llmkit.APIError) and issubclass(cls, llmkit.LLMKitError)
    assert issubclass(llmkit.APIConnectionError, llmkit.APIError)
    assert not issubclass(llmkit.CustomLLMError, llmkit.APIError)


def test_custom_llm_error_matches_litellms():
    error = llmkit.CustomLLMError(status_code=429, message="rate limited")
    assert (error.status_code, error.message, str(error)) == (429, "rate limited", "rate limited")
    from llmkit.llms.custom_llm import CustomLLMError

    assert CustomLLMError is llmkit.CustomLLMError


def test_errors_survive_pickling_with_their_attributes():
    error = llmkit.RateLimitError("slow", llm_provider="p", model="m", retry_after=2.0)
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is llmkit.RateLimitError
    assert (copy.message, copy.status_code, copy.llm_provider, copy.model, copy.retry_after) == (
        "slow",
        429,
        "p",
        "m",
        2.0,
    )
