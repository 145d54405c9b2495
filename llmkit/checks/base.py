"""What every check is: a named scorer of one answer, returning a :class:`CheckResult`.

A check is called with a ``compare()`` row (a pandas row or a dict with ``response``, ``latency_ms``,
``completion_tokens``, ...), a plain answer text, or a ``ModelResponse``; :class:`Answer` reads any of
them. Checks are cheap objects: ``compare(checks=[...])`` calls :meth:`Check.ascore` once per row.
"""

from __future__ import annotations

import inspect
import math
import re
from collections.abc import Callable
from typing import Any, NamedTuple

__all__ = ["Answer", "Check", "CheckResult", "as_check", "check_name"]


class CheckResult(NamedTuple):
    """One check's verdict on one answer: passed or not, a score (None when there is none), and why."""

    passed: bool
    score: float | None
    reason: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"passed": self.passed, "score": self.score, "reason": self.reason}


class Answer(NamedTuple):
    """What a check looks at: the answer text, its prompt, and the call's figures when known.

    (Named tuples, these two: compare() makes thousands of them a second.)
    """

    text: str | None
    prompt: Any = None
    latency_ms: float | None = None
    completion_tokens: int | None = None
    status: str = "ok"
    error: str | None = None

    @classmethod
    def of(cls, row_or_text: Any) -> Answer:
        if isinstance(row_or_text, Answer):
            return row_or_text
        if isinstance(row_or_text, str):
            return cls(text=row_or_text)
        if hasattr(row_or_text, "choices"):  # a ModelResponse
            choices = row_or_text.choices
            usage = getattr(row_or_text, "usage", None)
            return cls(
                text=choices[0].message.content if choices else None,
                completion_tokens=getattr(usage, "completion_tokens", None),
            )
        if hasattr(row_or_text, "get"):  # a compare() row: a dict or a pandas Series
            get = row_or_text.get
            return cls(
                text=_value(get("response")),
                prompt=_value(get("prompt")),
                latency_ms=_value(get("latency_ms")),
                completion_tokens=_value(get("completion_tokens")),
                status=_value(get("status")) or "ok",
                error=_value(get("error")),
            )
        raise TypeError(
            "a check takes a compare() row (a dict or a DataFrame row), an answer text or a ModelResponse,"
            f" got {type(row_or_text).__name__}"
        )


def _value(value: Any) -> Any:
    """None for pandas' missing values (NaN, <NA>), plain Python numbers for numpy ones."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if type(value).__name__ in ("NAType", "NaTType"):
        return None
    return value.item() if hasattr(value, "item") and not isinstance(value, (str, bytes)) else value


class Check:
    """A named scorer. Subclasses implement :meth:`score` (or :meth:`ascore` when they make calls)."""

    name: str = "check"
    #: A relative check (a pairwise judge) scores a row against the other models' rows and does not
    #: count towards ``passed``.
    pairwise = False

    def __call__(self, row_or_text: Any) -> CheckResult:
        """The verdict on one answer (a compare() row, a text or a ModelResponse)."""
        answer = Answer.of(row_or_text)
        if self.is_async:
            from llmkit import aio

            return aio.run_sync(self.ascore(answer))
        return self.score(answer)

    def score(self, answer: Answer) -> CheckResult:
        raise NotImplementedError

    async def ascore(self, answer: Answer) -> CheckResult:
        return self.score(answer)

    @property
    def is_async(self) -> bool:
        """Whether this check awaits something (a judge's call): compare() runs those as tasks."""
        return type(self).ascore is not Check.ascore

    def models(self) -> list[str]:
        """The models this check calls (judges), checked before a run starts."""
        return []

    def __repr__(self) -> str:
        return f"<check {self.name}>"


class _Callable(Check):
    """Any function of the answer text (or of the row) returning a bool, a number or (score, reason)."""

    def __init__(self, fn: Callable[..., Any], name: str, pass_at: float) -> None:
        self.fn, self.name, self.pass_at = fn, name, pass_at
        self._async = inspect.iscoroutinefunction(fn)
        self._wants_row = _wants_row(fn)

    @property
    def is_async(self) -> bool:
        return self._async

    def __call__(self, row_or_text: Any) -> CheckResult:
        if self._async:
            from llmkit import aio

            return aio.run_sync(self.ascore(Answer.of(row_or_text)))
        return self.score(Answer.of(row_or_text))

    def score(self, answer: Answer) -> CheckResult:
        return self._result(self.fn(answer if self._wants_row else answer.text))

    async def ascore(self, answer: Answer) -> CheckResult:
        if not self._async:
            return self.score(answer)
        return self._result(await self.fn(answer if self._wants_row else answer.text))

    def _result(self, value: Any) -> CheckResult:
        if isinstance(value, CheckResult):
            return value
        reason = ""
        if isinstance(value, tuple) and len(value) == 2:
            value, reason = value
        if isinstance(value, bool):
            return CheckResult(value, 1.0 if value else 0.0, str(reason))
        if isinstance(value, (int, float)) and not math.isnan(value):
            return CheckResult(value >= self.pass_at, float(value), str(reason))
        raise TypeError(
            f"check {self.name!r} returned {value!r}; a check function returns a bool, a number,"
            " or a (score, reason) pair"
        )


def _wants_row(fn: Callable[..., Any]) -> bool:
    """A function whose one parameter is named ``row`` or ``answer`` gets the whole :class:`Answer`."""
    try:
        parameters = list(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        return False
    return bool(parameters) and parameters[0] in ("row", "answer")


def as_check(fn: Any, name: str | None = None, *, pass_at: float = 0.5) -> Check:
    """A check from ``fn``: a :class:`Check` as it is, or any function of the answer.

    The function gets the answer text (or, when its parameter is named ``row`` or ``answer``, the
    :class:`Answer` with prompt, latency and tokens) and returns a bool, a number (passed when it is
    at least ``pass_at``), a ``(score, reason)`` pair, or a :class:`CheckResult`; it may be async.
    """
    if isinstance(fn, Check):
        return fn
    if not callable(fn):
        raise TypeError(f"a check is a Check (llmkit.checks.contains(...), ...) or a function, got {fn!r}")
    return _Callable(fn, name or check_name(getattr(fn, "__name__", "") or type(fn).__name__), pass_at)


def check_name(text: str) -> str:
    """A column-friendly name: lower case, words joined by ``_`` (``<lambda>`` becomes ``lambda``)."""
    return re.sub(r"[^0-9a-zA-Z]+", "_", text).strip("_").lower() or "check"
