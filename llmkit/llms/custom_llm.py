"""``from llmkit.llms.custom_llm import CustomLLM, CustomLLMError``, as in LiteLLM."""

from llmkit.providers.base import CustomLLM, CustomLLMError

__all__ = ["CustomLLM", "CustomLLMError"]
