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
from llmkit.calllog.store import encode_json
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
    """Scores rows of one run; :meth:`columns` gives the ``check_<name>`` and ``passed`` columns.

    Once a row's checks are all done, only its scores, its ``passed`` and its annotation (JSON text)
    are kept: plain values the garbage collector soon stops tracking, so a large run does not make
    every collection slower. Results are ordered as ``_row_names``: sync checks first, then the ones
    that await.
    """

    def __init__(self, checks: list[Check], models: list[str], run_id: str, concurrency: int) -> None:
        row_checks = [check for check in checks if not check.pairwise]
        self._sync = [check for check in row_checks if not check.is_async]
        self._async = [check for check in row_checks if check.is_async]
        self.pairwise = [check for check in checks if check.pairwise]
        self.names = [check.name for check in checks]  # the columns' order: as given
        self._row_names = [check.name for check in (*self._sync, *self._async)]  # the results' order
        self.models = models
        self.run_id = run_id
        self.verdicts: list[tuple[str, str, Any, str | None]] = []
        self._done: dict[int, tuple] = {}  # id(row) -> (scores, passed, annotation text)
        self._pending: dict[int, list] = {}  # id(row) -> results, while awaited checks run
        self._relative: dict[int, dict[str, CheckResult]] = {}  # id(row) -> pairwise checks' results
        self._call_ids: dict[int, str | None] = {}
        self._groups: dict[tuple, list[dict[str, Any]]] = {}
        self._tasks: list[asyncio.Task] = []
        self._limit = asyncio.Semaphore(concurrency)

    # -- while the run goes ----------------------------------------------------------------------
    def add(self, row: dict[str, Any]) -> None:
        # compare()'s rows hold every field, as plain values: no need for Answer.of's care with pandas
        answer = Answer(
            row["response"], row["prompt"], row["latency_ms"], row["completion_tokens"], row["status"], row["error"]
        )
        key = id(row)
        self._call_ids[key] = row["call_id"]
        if answer.status != "ok":
            failed = CheckResult(False, None, f"no answer: {answer.error or answer.status}")
            self._done[key] = _settled([failed] * len(self._row_names), self._row_names)
        else:
            results: list[CheckResult | None] = [_score(check, answer) for check in self._sync]
            if not self._async:
                self._done[key] = _settled(results, self._row_names)
            else:
                results.extend(None for _ in self._async)  # filled in as the tasks finish
                self._pending[key] = results
                for position, check in enumerate(self._async, start=len(self._sync)):
                    self._tasks.append(asyncio.ensure_future(self._score_later(results, position, check, answer)))
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

    async def _score_later(self, results: list, position: int, check: Check, answer: Answer) -> None:
        async with self._limit:
            with capture(self.run_id):  # the judge's calls are logged under this run too
                try:
                    results[position] = await check.ascore(answer)
                except Exception as exc:
                    results[position] = _failure(exc)

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
            self._relative.setdefault(id(row), {})[check.name] = result

    def _keep_verdict(
        self,
        row_a: dict[str, Any],
        row_b: dict[str, Any],
        check: Any,
        verdict: PairwiseVerdict,
        shares: dict[int, list[float]],
        reasons: dict[int, list[str]],
    ) -> None:
        share_of_a: dict[str | None, float] = {"A": 1.0, "B": 0.0, "tie": 0.5}  # the caller skips None
        share_a = share_of_a[verdict.winner]
        for row, other, share in ((row_a, row_b, share_a), (row_b, row_a, 1.0 - share_a)):
            shares[id(row)].append(share)
            reasons[id(row)].append(f"vs {other['model']}: {verdict.rationale}")
        self.verdicts.extend(verdict_annotations(row_a["call_id"], row_b["call_id"], check, verdict))

    # -- after the run -----------------------------------------------------------------------------
    def _entry(self, key: int) -> tuple | None:
        """(scores, passed, annotation text) of a row; a row whose awaited checks are done settles now."""
        pending = self._pending.pop(key, None)
        if pending is not None:
            self._done[key] = _settled(pending, self._row_names)
        return self._done.get(key)

    def annotations(self) -> list[tuple[str, str, str | None, str | None]]:
        """``(call_id, name, JSON text, group_id)`` to record: each call's row-check results as one
        ``checks`` annotation, then the pairwise verdicts."""
        items: list[tuple[str, str, str | None, str | None]] = []
        for key in list(self._done) + list(self._pending):
            entry, call_id = self._entry(key), self._call_ids[key]
            if call_id and entry is not None and entry[2] is not None:
                items.append((call_id, CHECKS, entry[2], self.run_id))
        return items + [(c, n, encode_json(v), g) for c, n, v, g in self.verdicts]

    def columns(self, rows: list[dict[str, Any]]) -> dict[str, list]:
        """For ``rows``, in order: ``check_<name>`` (the score, None when not scored) and ``passed``
        (every row check passed; None when one has no result, e.g. after Ctrl-C)."""
        columns: dict[str, list] = {"check_" + name: [] for name in self.names}
        positions = [(columns["check_" + name], i) for i, name in enumerate(self._row_names)]
        relative = [(columns["check_" + check.name], check.name) for check in self.pairwise]
        passed: list[bool | None] = []
        for row in rows:
            entry = self._entry(id(row))
            for column, i in positions:
                column.append(entry[0][i] if entry is not None else None)
            for column, name in relative:
                result = self._relative.get(id(row), {}).get(name)
                column.append(None if result is None else result.score)
            passed.append(entry[1] if entry is not None else None)
        columns["passed"] = passed
        return columns


def _settled(results: list, names: list[str]) -> tuple:
    """(scores, passed, annotation text) from a row's results; passed is None while one is missing."""
    scores = tuple(None if result is None else result.score for result in results)
    done = [(name, result) for name, result in zip(names, results, strict=True) if result is not None]
    passed = all(result.passed for _, result in done) if len(done) == len(results) and done else None
    text = encode_json({name: result.to_json() for name, result in done}) if done else None
    return scores, passed, text


def _score(check: Check, answer: Answer) -> CheckResult:
    try:
        return check.score(answer)
    except Exception as exc:  # a check that raises is a failed check; the row stays
        return _failure(exc)


def verdict_annotations(
    call_a: str, call_b: str, check: Any, verdict: PairwiseVerdict
) -> list[tuple[str, str, Any, str | None]]:
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


def _failure(exc: BaseException) -> CheckResult:
    return CheckResult(False, None, f"the check raised {type(exc).__name__}: {exc}")
