"""Wire types. ``llmkit.types.utils`` mirrors the module path LiteLLM handlers import from."""

from llmkit.types.utils import *  # noqa: F403
from llmkit.types.utils import __all__  # noqa: F401
