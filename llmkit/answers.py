"""Reading what a model answered: the code or the JSON inside an answer, fenced in ``` or not.

Shared by the notebook's ``-f code`` / ``-f json`` formats and by the JSON checks in
:mod:`llmkit.checks`.
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["extract_code", "parse_json_answer"]

_FENCE = re.compile(r"```[^\n`]*\n(.*?)```", re.DOTALL)


def extract_code(text: str) -> str:
    """The code in an answer: its fenced blocks joined, or the whole answer when it has none."""
    blocks = _FENCE.findall(text)
    return "\n\n".join(block.rstrip("\n") for block in blocks) if blocks else text.strip()


def parse_json_answer(text: str) -> Any:
    """The JSON value in an answer, which may be wrapped in a ```json fence; ValueError if none."""
    blocks = _FENCE.findall(text)
    return json.loads(blocks[0] if blocks else text)
