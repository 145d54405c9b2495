"""Token counts when a handler reports none.

tiktoken's ``cl100k_base`` is used where it is installed and its vocabulary is already in tiktoken's
cache on this machine, whole; otherwise the estimate is one token per four characters of text,
rounded up, and at least one token per word. That heuristic is within about 20% for English prose;
callers mark such counts as estimates. Counting never downloads anything: tiktoken fetches a missing
vocabulary from the internet, with no timeout, so it is not asked to load one it does not have.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from llmkit.messages import content_text, message_field
from llmkit.types.utils import Usage

if TYPE_CHECKING:
    import tiktoken

__all__ = ["Encoding", "count_message_tokens", "count_tokens", "encoding", "estimated_usage"]

# Where tiktoken downloads cl100k_base's vocabulary from, and the SHA-256 it expects of it (both as
# in tiktoken_ext/openai_public.py); its cache file is named by the SHA-1 of that address.
_CL100K_URL = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"
_CL100K_SHA256 = "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7"

_tiktoken_encoding: tiktoken.Encoding | None = None
_tiktoken_checked = False


def tiktoken_cache_path() -> str | None:
    """Where tiktoken looks for cl100k_base's vocabulary (None when its cache is turned off).

    The same rules as tiktoken's: TIKTOKEN_CACHE_DIR, else DATA_GYM_CACHE_DIR, else data-gym-cache
    in the temporary directory; an empty value turns the cache off.
    """
    import hashlib

    cache_dir = os.environ.get("TIKTOKEN_CACHE_DIR")
    if cache_dir is None:
        cache_dir = os.environ.get("DATA_GYM_CACHE_DIR")
    if cache_dir is None:
        import tempfile

        cache_dir = os.path.join(tempfile.gettempdir(), "data-gym-cache")
    if not cache_dir:
        return None
    return os.path.join(cache_dir, hashlib.sha1(_CL100K_URL.encode()).hexdigest())


def _vocabulary_is_cached() -> bool:
    """Whether tiktoken would load cl100k_base from its cache: the file is there and whole.

    A file that fails tiktoken's checksum is one tiktoken deletes and downloads again, so it counts
    as missing (and is left as it is).
    """
    import hashlib

    path = tiktoken_cache_path()
    if path is None:
        return False
    try:
        with open(path, "rb") as file:
            data = file.read()
    except OSError:
        return False
    return hashlib.sha256(data).hexdigest() == _CL100K_SHA256


def _tiktoken() -> tiktoken.Encoding | None:
    global _tiktoken_encoding, _tiktoken_checked
    if not _tiktoken_checked:
        _tiktoken_checked = True
        try:
            import importlib.util

            if importlib.util.find_spec("tiktoken") is not None and _vocabulary_is_cached():
                import tiktoken

                _tiktoken_encoding = tiktoken.get_encoding("cl100k_base")
        except Exception:  # a broken install: the heuristic still counts
            _tiktoken_encoding = None
    return _tiktoken_encoding


def count_tokens(text: str) -> int:
    if not text:
        return 0
    enc = _tiktoken()
    if enc is not None:
        return len(enc.encode(text, disallowed_special=()))
    return max(math.ceil(len(text) / 4), len(text.split()))


def count_message_tokens(messages: Iterable[Any] | None) -> int:
    """Prompt tokens of chat messages: their text plus a few tokens of framing per message."""
    if not messages:
        return 0
    return sum(4 + count_tokens(content_text(message_field(message, "content"))) for message in messages)


def estimated_usage(prompt_tokens: int, completion_tokens: int) -> Usage:
    """A Usage of llmkit's own counts, flagged ``estimated``, for an answer whose handler reported none."""
    # The validator with a dict: half the cost of Usage(...) with keywords, on the calling path. Read
    # here, not at import: reading it builds the model, and pydantic then scans its plugins' entry
    # points (importlib.metadata), which `import llmkit` must not pay for.
    usage: Usage = Usage.__pydantic_validator__.validate_python(
        {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "estimated": True,
        }
    )
    return usage


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
        raise NotImplementedError(
            "decoding needs tiktoken with cl100k_base's vocabulary in its cache (llmkit never downloads it):"
            " pip install tiktoken, then run python -c \"import tiktoken; tiktoken.get_encoding('cl100k_base')\""
            " once while online"
        )


encoding = Encoding()
