"""Checks that need no model: text matches, JSON shape, and the call's own figures."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from llmkit.answers import parse_json_answer
from llmkit.checks.base import Answer, Check, CheckResult, check_name

if TYPE_CHECKING:
    from pydantic import BaseModel

__all__ = ["contains", "equals", "icontains", "is_json", "json_schema", "max_latency_ms", "max_tokens", "regex"]


_NO_TEXT = CheckResult(False, 0.0, "no answer text")


class _TextCheck(Check):
    """A check of the answer text; an answer with no text fails with the reason."""

    def score(self, answer: Answer) -> CheckResult:
        if answer.text is None:
            return _NO_TEXT
        passed, reason = self.test(answer.text)
        return CheckResult(passed, 1.0 if passed else 0.0, reason)

    def test(self, text: str) -> tuple[bool, str]:
        raise NotImplementedError


def _short(text: str, limit: int = 60) -> str:
    return repr(text if len(text) <= limit else text[: limit - 1] + "\u2026")


class contains(Check):  # lower case: used like a function, checks.contains("Paris")
    """Passes when the answer contains ``text`` (case-sensitive; :class:`icontains` ignores case)."""

    ignore_case = False

    def __init__(self, text: str, *, name: str | None = None) -> None:
        if not isinstance(text, str) or not text:
            raise ValueError(f"{type(self).__name__} needs the non-empty text to look for, got {text!r}")
        self.text = text.lower() if self.ignore_case else text
        self.name = name or check_name(f"{type(self).__name__} {text}")[:40].rstrip("_")
        # The two possible results, made once: compare() scores thousands of answers a second.
        self._results = {True: CheckResult(True, 1.0, f"found {_short(text)}"),
                         False: CheckResult(False, 0.0, f"did not find {_short(text)}")}  # fmt: skip

    def score(self, answer: Answer) -> CheckResult:
        if answer.text is None:
            return _NO_TEXT
        return self._results[self.text in (answer.text.lower() if self.ignore_case else answer.text)]


class icontains(contains):
    """Passes when the answer contains ``text``, whatever the case."""

    ignore_case = True


class regex(_TextCheck):
    """Passes when ``pattern`` matches somewhere in the answer (``re.search``; ``flags`` as for ``re``)."""

    def __init__(self, pattern: str, *, flags: int = 0, name: str | None = None) -> None:
        try:
            self.pattern = re.compile(pattern, flags)
        except (re.error, TypeError) as exc:
            raise ValueError(f"regex({pattern!r}) is not a valid regular expression: {exc}") from None
        self.name = name or "regex"

    def test(self, text: str) -> tuple[bool, str]:
        match = self.pattern.search(text)
        if match is None:
            return False, f"no match for {_short(self.pattern.pattern)}"
        return True, f"matched {_short(match.group(0))}"


class equals(_TextCheck):
    """Passes when the answer is ``expected``, leading and trailing whitespace aside (``strip=False``
    compares exactly; ``ignore_case=True`` ignores case)."""

    def __init__(self, expected: str, *, strip: bool = True, ignore_case: bool = False, name: str | None = None):
        if not isinstance(expected, str):
            raise TypeError(f"equals needs the expected text, got {expected!r}")
        self.expected, self.strip, self.ignore_case = expected, strip, ignore_case
        self.name = name or "equals"

    def _norm(self, text: str) -> str:
        text = text.strip() if self.strip else text
        return text.lower() if self.ignore_case else text

    def test(self, text: str) -> tuple[bool, str]:
        if self._norm(text) == self._norm(self.expected):
            return True, "equal"
        return False, f"expected {_short(self.expected)}, got {_short(text)}"


class is_json(_TextCheck):
    """Passes when the answer is JSON (a ```json fence around it is allowed)."""

    def __init__(self, *, name: str | None = None) -> None:
        self.name = name or "is_json"

    def test(self, text: str) -> tuple[bool, str]:
        try:
            parse_json_answer(text)
        except ValueError as exc:
            return False, f"not JSON: {exc}"
        return True, "valid JSON"


class json_schema(_TextCheck):
    """Passes when the answer is JSON that fits ``schema``: a pydantic model class (validated by
    pydantic) or a JSON Schema dict (validated by ``jsonschema``: ``pip install 'llmkit[evals]'``)."""

    def __init__(self, schema: Any, *, name: str | None = None) -> None:
        self.name = name or "json_schema"
        if isinstance(schema, type) and hasattr(schema, "model_validate"):
            self._validate = _pydantic_validator(schema)
        elif isinstance(schema, dict):
            self._validate = _jsonschema_validator(schema)
        else:
            raise TypeError(f"json_schema takes a JSON Schema dict or a pydantic model class, got {schema!r}")

    def test(self, text: str) -> tuple[bool, str]:
        try:
            value = parse_json_answer(text)
        except ValueError as exc:
            return False, f"not JSON: {exc}"
        problem = self._validate(value)
        return (True, "fits the schema") if problem is None else (False, problem)


def _pydantic_validator(model: type[BaseModel]) -> Any:
    from pydantic import ValidationError

    def validate(value: Any) -> str | None:
        try:
            model.model_validate(value)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "the value"
            return f"{where}: {first['msg']}"
        return None

    return validate


def _jsonschema_validator(schema: dict) -> Any:
    try:
        import jsonschema
    except ImportError:
        raise ImportError(
            "json_schema with a JSON Schema dict needs jsonschema: pip install 'llmkit[evals]'"
            " (or pass a pydantic model class instead)"
        ) from None
    cls = jsonschema.validators.validator_for(schema)
    try:
        cls.check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise ValueError(f"json_schema: the schema itself is invalid: {exc.message}") from None
    validator = cls(schema)

    def validate(value: Any) -> str | None:
        error = jsonschema.exceptions.best_match(validator.iter_errors(value))
        if error is None:
            return None
        where = ".".join(str(part) for part in error.absolute_path) or "the value"
        return f"{where}: {error.message}"

    return validate


class max_latency_ms(Check):
    """Passes when the call took at most ``limit`` milliseconds (a compare() row has its latency)."""

    def __init__(self, limit: float, *, name: str | None = None) -> None:
        _positive("max_latency_ms", limit)
        self.limit = limit
        self.name = name or "max_latency_ms"

    def score(self, answer: Answer) -> CheckResult:
        if answer.latency_ms is None:
            return CheckResult(False, None, "no latency known: check a compare() row, not a bare text")
        passed = answer.latency_ms <= self.limit
        return CheckResult(passed, 1.0 if passed else 0.0, f"{answer.latency_ms:.0f} ms (limit {self.limit:g} ms)")


class max_tokens(Check):
    """Passes when the answer has at most ``limit`` completion tokens (the handler's count, or an estimate)."""

    def __init__(self, limit: int, *, name: str | None = None) -> None:
        _positive("max_tokens", limit)
        self.limit = limit
        self.name = name or "max_tokens"

    def score(self, answer: Answer) -> CheckResult:
        tokens = answer.completion_tokens
        if tokens is None:
            if answer.text is None:
                return CheckResult(False, None, "no answer")
            from llmkit.tokens import count_tokens

            tokens = count_tokens(answer.text)
        passed = tokens <= self.limit
        return CheckResult(passed, 1.0 if passed else 0.0, f"{tokens} tokens (limit {self.limit})")


def _positive(name: str, limit: Any) -> None:
    if isinstance(limit, bool) or not isinstance(limit, (int, float)) or not limit > 0:
        raise ValueError(f"{name} needs a limit above 0, got {limit!r}")
