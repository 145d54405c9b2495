"""Token counts when a handler reports none.

tiktoken's ``cl100k_base`` is used where it is installed and its data is cached locally; otherwise
the estimate is one token per four characters of text, rounded up, and at least one token per word.
That heuristic is within about 20% for English prose; callers mark such counts as estimates.
"""

from __future__ import annotations

import math
from typing import Any, Iterable

from llmkit.messages import content_text, message_field

__all__ = ["Encoding", "count_message_tokens", "count_tokens", "encoding", "estimated_usage"]

_tiktoken_encoding: Any = None
_tiktoken_checked = False


def _tiktoken() -> Any:
    global _tiktoken_encoding, _tiktoken_checked
    if not _tiktoken_checked:
        _tiktoken_checked = True
        try:
            import tiktoken

            _tiktoken_encoding = tiktoken.get_encoding("cl100k_base")
        except Exception:  # not installed, or its data cannot be fetched offline
            _tiktoken_encoding = None
    return _tiktoken_encoding


def count_tokens(text: str) -> int:
    if not text:
        return 0
    enc = _tiktoken()
    if enc is not None:
        return len(enc.encode(text, disallowed_special=()))
    return max(math.ceil(len(text) / 4), len(text.split()))


def count_message_tokens(messages: Iterable[Any]) -> int:
    """Prompt tokens of chat messages: their text plus a few tokens of framing per message."""
    return sum(4 + count_tokens(content_text(message_field(message, "content"))) for message in messages or ())


def estimated_usage(prompt_tokens: int, completion_tokens: int) -> Any:
    """A Usage of llmkit's own counts, flagged ``estimated``, for an answer whose handler reported none."""
    from llmkit.types.utils import Usage

    return Usage(
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        total_tokens=prompt_tokens + completion_tokens,
        estimated=True,
    )


class Encoding:
    """The ``encoding`` handlers receive: encode/decode without requiring a tokenizer library."""

    name = "llmkit-estimate"

    def encode(self, text: str, **_: Any) -> list[int]:
        enc = _tiktoken()
        if enc is not None:
            return enc.encode(text, disallowed_special=())
        # Without a tokenizer only the count is meaningful: placeholder ids, as many as the estimate.
        return [0] * count_tokens(text)

    def decode(self, tokens: list[int], **_: Any) -> str:
        enc = _tiktoken()
        if enc is not None:
            return enc.decode(tokens)
        raise NotImplementedError("decoding needs tiktoken: pip install tiktoken")


encoding = Encoding()
