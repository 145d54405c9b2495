"""Checks that ask a model: ``judge`` grades one answer against a rubric, ``pairwise_judge`` picks
the better of two answers, asked in both orders so that the judge's taste for a position cancels.

Judges call any registered model through the dispatcher with ``source="judge"``, so their calls are
logged (and cached) like any other. Their replies are read leniently: JSON when there is any, else a
``score: 7`` or ``verdict: A`` line; a reply that says nothing readable is a failed check (or a
verdict of None) with the raw reply as the reason, never an exception.
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass, field
from typing import Any

from llmkit.checks.base import Answer, Check, CheckResult, check_name
from llmkit.messages import prompt_text

__all__ = ["PairwiseVerdict", "judge", "pairwise_judge"]

SOURCE = "judge"

_GRADER = (
    "You grade one answer to a question against a rubric. Reply with JSON only:"
    ' {"score": <a whole number from 0 (fails the rubric) to 10 (fully meets it)>, "reason": "<one sentence>"}'
)
_COMPARER = (
    "You compare two answers to one question and say which is better (by the rubric, when one is given)."
    ' Reply with JSON only: {"verdict": "A" or "B" or "tie", "reason": "<one sentence>"}'
)


def _reply_text(response: Any) -> str:
    choices = getattr(response, "choices", None)
    return (choices[0].message.content or "") if choices else ""


def _json_object(text: str) -> dict | None:
    """The first JSON object in ``text`` (the whole reply, a fenced block, or braces inside prose)."""
    for candidate in (text, *re.findall(r"```(?:json)?\s*(.*?)```", text, re.DOTALL), *_braces(text)):
        try:
            value = json.loads(candidate)
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    return None


def _braces(text: str) -> list[str]:
    start, end = text.find("{"), text.rfind("}")
    return [text[start : end + 1]] if 0 <= start < end else []


def _first(mapping: dict, *names: str) -> Any:
    lowered = {str(key).lower(): value for key, value in mapping.items()}
    return next((lowered[name] for name in names if name in lowered), None)


class judge(Check):  # lower case: used like a function, checks.judge("openai/gpt-4o-mini", "...")
    """Asks ``model`` to grade an answer from 0 to 10 against ``rubric``; the score is that grade / 10,
    and the check passes when the score is at least ``pass_at``. Other keyword arguments go to the
    judge's calls (``temperature=0``, ``api_base=...``)."""

    def __init__(self, model: str, rubric: str, *, name: str | None = None, pass_at: float = 0.5, **params: Any):
        if not isinstance(model, str) or "/" not in model:
            raise ValueError(f"judge needs a 'provider/model' string for the judge model, got {model!r}")
        if not isinstance(rubric, str) or not rubric.strip():
            raise ValueError("judge needs a rubric: what a good answer does, in a sentence or two")
        self.model, self.rubric, self.pass_at, self.params = model, rubric, pass_at, params
        self.name = name or "judge"

    def models(self) -> list[str]:
        return [self.model]

    def messages(self, answer: Answer) -> list[dict[str, str]]:
        question = prompt_text(answer.prompt)
        body = f"[Question]\n{question}\n\n[Answer]\n{answer.text}\n\n[Rubric]\n{self.rubric}"
        return [{"role": "system", "content": _GRADER}, {"role": "user", "content": body}]

    async def ascore(self, answer: Answer) -> CheckResult:
        if answer.text is None:
            return CheckResult(False, None, "no answer to judge")
        from llmkit.dispatch import acompletion

        try:
            response = await acompletion(self.model, self.messages(answer), source=SOURCE, **self.params)
        except Exception as exc:
            return CheckResult(False, None, f"the judge's call failed: {type(exc).__name__}: {exc}")
        return self.read(_reply_text(response))

    def read(self, reply: str) -> CheckResult:
        """The verdict in a judge's reply; a reply with no readable grade fails with the reply as reason."""
        grade, reason = _grade(reply)
        if grade is None:
            return CheckResult(False, None, f"unreadable judge reply: {reply!r}")
        return CheckResult(grade >= self.pass_at, grade, reason or reply.strip())


def _grade(reply: str) -> tuple[float | None, str]:
    """(score in 0..1, reason) from a grader's reply; (None, "") when it holds no grade."""
    found = _json_object(reply)
    if found is not None:
        reason = _first(found, "reason", "rationale", "explanation") or ""
        return _scaled(_first(found, "score", "grade", "rating")), str(reason)
    match = re.search(r"(?:score|grade|rating)\W{0,3}(\d+(?:\.\d+)?)(?:\s*/\s*(\d+))?", reply, re.IGNORECASE)
    if match is None:
        return None, ""
    out_of = float(match.group(2)) if match.group(2) else None
    return _scaled(match.group(1), out_of), reply.strip()


def _scaled(value: Any, out_of: float | None = None) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    top = out_of or 10.0
    if not 0 <= number <= top:
        return None
    return number / top


# -- pairwise -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PairwiseVerdict:
    """Which of two answers is better: ``winner`` "A", "B", "tie", or None when the judge's replies
    were unreadable; ``score`` from +1 (A better) to -1 (B better); each way of asking in ``ratings``
    (``is_flipped``: B was shown first; ``score`` in A's favour; the judge's ``rating_label``)."""

    winner: str | None
    score: float | None
    rationale: str
    ratings: list[dict[str, Any]] = field(default_factory=list)


_LABEL_SCORE = {"A": 1.0, "B": -1.0, "tie": 0.0}


class pairwise_judge(Check):
    """Asks ``model`` which of two answers to one prompt is better, once as (A, B) and once as (B, A).

    ``pj(prompt, answer_a, answer_b)`` returns a :class:`PairwiseVerdict`. In ``compare(checks=[pj])``
    each answer is judged against the other models' answers to the same prompt and sample; its column
    is its share of wins (a tie counts half) and it does not count towards ``passed``.
    """

    pairwise = True

    def __init__(self, model: str, rubric: str | None = None, *, name: str | None = None, **params: Any):
        if not isinstance(model, str) or "/" not in model:
            raise ValueError(f"pairwise_judge needs a 'provider/model' string for the judge model, got {model!r}")
        self.model, self.rubric, self.params = model, rubric, params
        self.name = name or check_name("pairwise")

    def models(self) -> list[str]:
        return [self.model]

    def __call__(self, prompt: Any, answer_a: str, answer_b: str) -> PairwiseVerdict:  # type: ignore[override]
        from llmkit import aio

        return aio.run_sync(self.averdict(prompt, answer_a, answer_b))

    def messages(self, prompt: Any, first: str, second: str) -> list[dict[str, str]]:
        body = f"[Question]\n{prompt_text(prompt)}\n\n[Answer A]\n{first}\n\n[Answer B]\n{second}"
        if self.rubric:
            body += f"\n\n[Rubric]\n{self.rubric}"
        return [{"role": "system", "content": _COMPARER}, {"role": "user", "content": body}]

    async def averdict(self, prompt: Any, answer_a: str, answer_b: str) -> PairwiseVerdict:
        asked = await asyncio.gather(self._ask(prompt, answer_a, answer_b), self._ask(prompt, answer_b, answer_a))
        ratings = [
            _rating(label, reason, flipped) for (label, reason), flipped in zip(asked, (False, True), strict=True)
        ]
        scores = [r["score"] for r in ratings if r["score"] is not None]
        rationale = "\n".join(dict.fromkeys(r["rationale"] for r in ratings if r["rationale"]))
        if not scores:
            return PairwiseVerdict(None, None, rationale, ratings)
        score = sum(scores) / len(scores)
        winner = "A" if score > 0 else "B" if score < 0 else "tie"
        return PairwiseVerdict(winner, score, rationale, ratings)

    async def _ask(self, prompt: Any, first: str, second: str) -> tuple[str | None, str]:
        from llmkit.dispatch import acompletion

        try:
            response = await acompletion(self.model, self.messages(prompt, first, second), source=SOURCE, **self.params)
        except Exception as exc:
            return None, f"the judge's call failed: {type(exc).__name__}: {exc}"
        reply = _reply_text(response)
        label, reason = read_verdict(reply)
        return (label, reason) if label is not None else (None, f"unreadable judge reply: {reply!r}")


def _rating(label: str | None, reason: str, flipped: bool) -> dict[str, Any]:
    score = _LABEL_SCORE.get(label) if label is not None else None
    if score is not None and flipped:
        score = -score  # the judge saw B as "A": its verdict is turned back to the original order
    return {"is_flipped": flipped, "score": score, "rating_label": label, "rationale": reason}


def read_verdict(reply: str) -> tuple[str | None, str]:
    """("A" | "B" | "tie" | None, reason) from a pairwise judge's reply."""
    found = _json_object(reply)
    if found is not None:
        label = _label(_first(found, "verdict", "winner", "better", "choice"))
        return label, str(_first(found, "reason", "rationale", "explanation") or "")
    match = re.search(r"(?:verdict|winner|better)\W{0,3}(A|B|tie)\b", reply, re.IGNORECASE)
    if match is None:
        match = re.fullmatch(r"\W*(A|B|tie)\W*", reply, re.IGNORECASE)
    return (_label(match.group(1)), reply.strip()) if match else (None, "")


def _label(value: Any) -> str | None:
    text = str(value).strip().strip('"').lower() if value is not None else ""
    return {"a": "A", "b": "B", "tie": "tie", "draw": "tie", "equal": "tie"}.get(text)
