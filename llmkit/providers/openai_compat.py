"""The built-in ``openai/<model>`` provider: any server that speaks OpenAI's HTTP API.

OpenAI itself, vLLM, llama.cpp's server, LM Studio, a company gateway or llmkit's own proxy: point
``api_base`` at it (``http://127.0.0.1:8000/v1``). The base URL and key come from the call
(``api_base=``, ``api_key=``), else from the constructor (to register one server under a name of its
own), else from ``OPENAI_BASE_URL`` / ``OPENAI_API_BASE`` and ``OPENAI_API_KEY``. Every
optional_param goes into the request body as is (``extra_body={...}`` is merged in, as the official
client does), so OpenAI parameters and a server's own extensions pass through. Streams ask for usage
(``stream_options.include_usage``) unless the call set stream_options itself.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from llmkit.http import HTTPLLM, Request
from llmkit.types.utils import ModelResponseStream

__all__ = ["OpenAICompatLLM"]


class OpenAICompatLLM(HTTPLLM):
    api_base = "https://api.openai.com/v1"
    api_base_env = ("OPENAI_BASE_URL", "OPENAI_API_BASE")
    api_key_env = ("OPENAI_API_KEY",)

    _reads_chunks_itself = False  # a subclass that does (its own parse_chunk or stream_error) gets its hooks called

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.parse_chunk is not OpenAICompatLLM.parse_chunk or cls.stream_error is not HTTPLLM.stream_error:
            cls._reads_chunks_itself = True

    def _fast_chunk_reader(self) -> Callable[[str, str], ModelResponseStream | None] | None:
        return None if self._reads_chunks_itself else self._chunk_from_event

    def _chunk_from_event(self, event: str, data: str) -> ModelResponseStream | None:
        """An event's chat.completion.chunk, validated straight from its JSON text in one pass.

        None sends the event down the general path (json.loads, stream_error, parse_chunk): anything
        but a plain chunk, such as an error event or a body that does not validate.
        """
        if event != "message":
            return None
        try:
            chunk: ModelResponseStream = ModelResponseStream.__pydantic_validator__.validate_json(data)  # minus a layer
        except ValueError:
            return None
        extra = chunk.__pydantic_extra__
        if (
            chunk.object == "error"
            or (extra and extra.get("error") is not None)
            or "choices" not in chunk.__pydantic_fields_set__
        ):
            return None
        return chunk

    def build_request(self, model: str, messages: list, params: dict, stream: bool) -> Request:
        body = _body(params, model=model, messages=messages)
        if stream:
            body["stream"] = True
            body.setdefault("stream_options", {"include_usage": True})
        else:
            body.pop("stream_options", None)  # OpenAI rejects stream_options without stream
        return Request("/chat/completions", json=body)

    def parse_response(self, data: Any, model: str) -> Any:
        return data  # already the chat.completion shape

    def parse_chunk(self, data: Any, model: str) -> Any:
        return data  # a chat.completion.chunk: llmkit's stream wrapper takes it as it is

    def build_embedding_request(self, model: str, input: Any, params: dict) -> Request:
        return Request("/embeddings", json=_body(params, model=model, input=input))

    def parse_embedding_response(self, data: Any, model: str) -> Any:
        return data

    def build_image_request(self, model: str, prompt: str, params: dict) -> Request:
        return Request("/images/generations", json=_body(params, model=model, prompt=prompt))

    def parse_image_response(self, data: Any, model: str) -> Any:
        return data


def _body(params: dict, **fields: Any) -> dict:
    body = {**fields, **params}
    extra = body.pop("extra_body", None)
    if extra:
        body.update(extra)
    return body
