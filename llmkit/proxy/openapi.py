"""The OpenAPI document served at ``/openapi.json``, built from the request models."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

import llmkit
from llmkit.proxy.bodies import ChatBody, EmbeddingBody, ImageBody

__all__ = ["openapi_document"]

_ERROR = {
    "type": "object",
    "properties": {
        "error": {
            "type": "object",
            "properties": {name: {"type": ["string", "null"]} for name in ("message", "type", "param", "code")},
        }
    },
}


def _post(summary: str, body: type[BaseModel], answer: str) -> dict[str, Any]:
    return {
        "post": {
            "summary": summary,
            "security": [{"bearer": []}],
            "requestBody": {"required": True, "content": {"application/json": {"schema": body.model_json_schema()}}},
            "responses": {
                "200": {"description": answer},
                "default": {"description": "an error", "content": {"application/json": {"schema": _ERROR}}},
            },
        }
    }


def _get(summary: str, public: bool = False) -> dict[str, Any]:
    operation: dict[str, Any] = {"summary": summary, "responses": {"200": {"description": "OK"}}}
    operation["security"] = [] if public else [{"bearer": []}]
    return {"get": operation}


def openapi_document() -> dict[str, Any]:
    paths = {
        "/v1/chat/completions": _post(
            "Chat completion; with stream: true, server-sent chat.completion.chunk events then [DONE]",
            ChatBody,
            "a chat.completion object, or a text/event-stream",
        ),
        "/v1/images/generations": _post("Image generation", ImageBody, "{created, data: [{url | b64_json}]}"),
        "/v1/embeddings": _post("Embeddings", EmbeddingBody, "{object: list, data: [{embedding, index}], usage}"),
        "/v1/models": _get("The model names this proxy serves"),
        "/health": _get("Liveness: the server answers", public=True),
        "/health/readiness": _get("Readiness: the config is loaded and models are served", public=True),
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "llmkit proxy",
            "version": llmkit.__version__,
            "description": "OpenAI-compatible API over llmkit's providers. Every path is also served without /v1.",
        },
        "paths": paths,
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    }
