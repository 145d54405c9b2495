"""LiteLLM-compatible import paths for handler authors (``llmkit.llms.custom_llm``)."""
