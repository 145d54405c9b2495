"""``llmkit.checks``: scorers of answers, on their own or in ``compare(..., checks=[...])``.

Every check has a ``name`` and is called with a compare() row, an answer text or a ModelResponse:
``checks.contains("Paris")("Paris is the capital") -> CheckResult(passed=True, score=1.0, reason=...)``.

- deterministic: :class:`contains`, :class:`icontains`, :class:`regex`, :class:`equals`,
  :class:`is_json`, :class:`json_schema`, :class:`max_latency_ms`, :class:`max_tokens`, and any
  function (:func:`as_check`);
- model-graded: :class:`judge` (a grade against a rubric) and :class:`pairwise_judge` (the better of
  two answers, asked in both orders).
"""

from llmkit.checks.base import Answer, Check, CheckResult, as_check
from llmkit.checks.deterministic import (
    contains,
    equals,
    icontains,
    is_json,
    json_schema,
    max_latency_ms,
    max_tokens,
    regex,
)
from llmkit.checks.judges import PairwiseVerdict, judge, pairwise_judge

__all__ = [
    "Answer",
    "Check",
    "CheckResult",
    "PairwiseVerdict",
    "as_check",
    "contains",
    "equals",
    "icontains",
    "is_json",
    "json_schema",
    "judge",
    "max_latency_ms",
    "max_tokens",
    "pairwise_judge",
    "regex",
]
