"""Checks applied to compare()'s rows as they arrive, and their results kept for the call log.

compare() hands each finished row to :meth:`Scorer.add`. Deterministic checks run at once (they
cost microseconds); checks that call a model (judges) start as tasks, so they run while the other
calls of the run are still in flight. A pairwise judge waits until every model has answered a
(prompt, sample), then judges each pair. Each call's results become one call-log annotation on it,
``checks`` = ``{name: {"passed", "score", "reason"}}`` (one row per call rather than per check: a
row costs SQLite several microseconds), and each pairwise verdict a ``pairwise`` annotation on both
calls judged; all written in one batch at the end.
"""

from __future__ import annotations

import asyncio
import itertools
import os
from typing import Any

from llmkit.calllog.recorder import capture
from llmkit.checks.base import Answer, Check, CheckResult, as_check
from llmkit.checks.judges import PairwiseVerdict

__all__ = ["CHECKS", "PAIRWISE", "SAMPLE", "Scorer", "prepare_checks", "verdict_annotations"]

CHECKS = "checks"  # annotation name of a call's check results: {check name: {passed, score, reason}}
PAIRWISE = "pairwise"  # annotation name of a pairwise verdict, on both calls judged
SAMPLE = "sample"  # annotation name of a call's sample index, when compare() took several
SOURCE = "check"


def prepare_checks(checks: Any) -> list[Check]:
    """Checks from what compare(checks=...) was given; clear errors for duplicates and unknown judges."""
    if checks is None:
        return []
    prepared = [as_check(check) for check in (checks if isinstance(checks, (list, tuple)) else [checks])]
    names = [check.name for check in prepared]
    for name in names:
        if names.count(name) > 1:
            raise ValueError(
                f"two checks are named {name!r}: name them apart, e.g. contains('x', name='has_x')"
                " or as_check(fn, name='short')"
            )
    from llmkit.params import get_llm_provider

    for check in prepared:
        for model in check.models():
            get_llm_provider(model)  # BadRequestError naming the registered providers, before any call
    return prepared


class Scorer:
    """Scores rows of one run; ``columns(row)`` gives a row's ``check_<name>`` and ``passed`` values."""

    def __init__(self, checks: list[Check], models: list[str], run_id: str, concurrency: int) -> None:
        self.row_checks = [check for check in checks if not check.pairwise]
        self._sync = [check for check in self.row_checks if not check.is_async]
        self._async = [check for check in self.row_checks if check.is_async]
        self.pairwise = [check for check in checks if check.pairwise]
        self.models = models
        self.run_id = run_id
        self.verdicts: list[tuple[str, str, Any, str | None]] = []
        self._results: dict[int, dict[str, CheckResult]] = {}
        self._call_ids: dict[int, str] = {}
        self._groups: dict[tuple, list[dict[str, Any]]] = {}
        self._tasks: list[asyncio.Task] = []
        self._limit = asyncio.Semaphore(concurrency)

    @property
    def names(self) -> list[str]:
        return [check.name for check in (*self.row_checks, *self.pairwise)]

    # -- while the run goes ----------------------------------------------------------------------
    def add(self, row: dict[str, Any]) -> None:
        # compare()'s rows hold plain values: no need for Answer.of's care with pandas' missing values
        get = row.get
        answer = Answer(
            get("response"), get("prompt"), get("latency_ms"), get("completion_tokens"), get("status"), get("error")
        )
        if answer.status != "ok":
            failed = CheckResult(False, None, f"no answer: {answer.error or answer.status}")
            for check in self.row_checks:
                self._keep(row, check, failed)
        else:
            for check in self._sync:
                self._keep(row, check, _safely(check.score, answer))
            for check in self._async:
                self._tasks.append(asyncio.ensure_future(self._score_later(row, check, answer)))
        if self.pairwise:
            group = self._groups.setdefault((row["prompt_index"], row["sample"]), [])
            group.append(row)
            if len(group) == len(self.models):
                for check in self.pairwise:
                    self._tasks.append(asyncio.ensure_future(self._judge_group(group, check)))

    async def finish(self) -> None:
        """Wait for the checks still running (judges)."""
        try:
            await asyncio.gather(*self._tasks)
        finally:
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _score_later(self, row: dict[str, Any], check: Check, answer: Answer) -> None:
        async with self._limit:
            with capture(self.run_id):  # the judge's calls are logged under this run too
                try:
                    result = await check.ascore(answer)
                except Exception as exc:
                    result = _failure(exc)
        self._keep(row, check, result)

    async def _judge_group(self, rows: list[dict[str, Any]], check: Any) -> None:
        answered = [row for row in rows if row["status"] == "ok"]
        shares: dict[int, list[float]] = {id(row): [] for row in answered}
        reasons: dict[int, list[str]] = {id(row): [] for row in answered}
        for row_a, row_b in itertools.combinations(answered, 2):
            async with self._limit:
                with capture(self.run_id):
                    try:
                        verdict = await check.averdict(row_a["prompt"], row_a["response"], row_b["response"])
                    except Exception as exc:
                        verdict = PairwiseVerdict(None, None, f"the check raised {type(exc).__name__}: {exc}")
            if verdict.winner is None:
                for row in (row_a, row_b):
                    reasons[id(row)].append(verdict.rationale)
                continue
            self._keep_verdict(row_a, row_b, check, verdict, shares, reasons)
        for row in rows:
            got = shares.get(id(row)) or []
            if row["status"] != "ok":
                result = CheckResult(False, None, f"no answer: {row.get('error') or row['status']}")
            elif not got:
                result = CheckResult(
                    False, None, "; ".join(reasons.get(id(row)) or ["no other answer to compare with"])
                )
            else:
                score = sum(got) / len(got)
                result = CheckResult(score >= 0.5, score, "; ".join(reasons[id(row)]))
            self._keep(row, check, result)

    def _keep_verdict(self, row_a, row_b, check, verdict, shares, reasons) -> None:
        share_a = {"A": 1.0, "B": 0.0, "tie": 0.5}[verdict.winner]
        for row, other, share in ((row_a, row_b, share_a), (row_b, row_a, 1.0 - share_a)):
            shares[id(row)].append(share)
            reasons[id(row)].append(f"vs {other['model']}: {verdict.rationale}")
        self.verdicts.extend(verdict_annotations(row_a["call_id"], row_b["call_id"], check, verdict))

    def _keep(self, row: dict[str, Any], check: Check, result: CheckResult) -> None:
        key = id(row)
        if key not in self._results:
            self._results[key] = {}
            self._call_ids[key] = row.get("call_id")
        self._results[key][check.name] = result

    # -- after the run -----------------------------------------------------------------------------
    def annotations(self) -> list[tuple[str, str, Any, str | None]]:
        """``(call_id, name, value, group_id)`` to record: each call's row-check results, and the verdicts."""
        names = {check.name for check in self.row_checks}
        items = [
            (self._call_ids[key], CHECKS, {n: r.to_json() for n, r in results.items() if n in names}, self.run_id)
            for key, results in self._results.items()
            if self._call_ids[key] and names & results.keys()
        ]
        return items + self.verdicts

    def columns(self, row: dict[str, Any]) -> dict[str, Any]:
        """``check_<name>`` (the score, None when not scored) and ``passed`` (every row check passed)."""
        results = self._results.get(id(row), {})
        values: dict[str, Any] = {}
        for name in self.names:
            result = results.get(name)
            values["check_" + name] = None if result is None else result.score
        row_results = [results.get(check.name) for check in self.row_checks]
        complete = all(result is not None for result in row_results)
        values["passed"] = all(result.passed for result in row_results) if complete and row_results else None
        return values

    def result(self, row: dict[str, Any], name: str) -> CheckResult | None:
        return self._results.get(id(row), {}).get(name)


def verdict_annotations(call_a: str, call_b: str, check: Any, verdict: Any) -> list[tuple[str, str, Any, str]]:
    """A verdict as two ``pairwise`` annotations, one on each call judged, tied by one group id."""
    if verdict.winner is None:
        return []
    group_id = os.urandom(16).hex()
    result_a = {"A": "win", "B": "loss", "tie": "tie"}[verdict.winner]
    result_b = {"win": "loss", "loss": "win", "tie": "tie"}[result_a]
    common = {"judge": check.model, "check": check.name, "rationale": verdict.rationale}
    return [
        (call_a, PAIRWISE, {"result": result_a, "against": call_b, **common}, group_id),
        (call_b, PAIRWISE, {"result": result_b, "against": call_a, **common}, group_id),
    ]


def _safely(score: Any, answer: Answer) -> CheckResult:
    try:
        return score(answer)
    except Exception as exc:  # a check that raises is a failed check; the row stays
        return _failure(exc)


def _failure(exc: BaseException) -> CheckResult:
    return CheckResult(False, None, f"the check raised {type(exc).__name__}: {exc}")
