"""``from llmkit.llms.base import BaseLLM``, as in LiteLLM."""

from llmkit.providers.base import BaseLLM

__all__ = ["BaseLLM"]
