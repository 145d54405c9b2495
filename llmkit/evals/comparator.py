"""``llmkit.export_llm_comparator``: two models' answers as the JSON file Google PAIR's LLM
Comparator viewer loads, optionally scored by a pairwise judge.

The file: ``metadata.custom_fields_schema`` (each custom field's name and type), ``models`` (A then
B), ``examples`` (one per prompt, and sample, answered by both: ``input_text``, ``tags``,
``output_text_a`` / ``_b``, ``score`` positive when A is better, ``individual_rater_scores`` with one
entry per way the judge was asked, ``custom_fields``) and ``rationale_clusters``. Per-model figures
(latency, tokens, check scores, passed) are ``per_model_number`` / ``per_model_boolean`` fields, values
``[a, b]``, so the viewer can slice by them. Written directly: no dependency on the llm-comparator
package.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

from llmkit.evals.scoring import CHECKS
from llmkit.messages import prompt_text

__all__ = ["export_llm_comparator"]

_NUMBERS = ("latency_ms", "ttft_ms", "completion_tokens", "total_tokens", "cost_usd")


def export_llm_comparator(
    results: Any, path: str | Path, *, model_a: str, model_b: str, judge: Any = None, concurrency: int = 8
) -> Path:
    """Write ``results`` (a ``compare()`` DataFrame, or a slice of ``llmkit.calls.to_dataframe()``)
    for ``model_a`` against ``model_b`` to ``path`` in LLM Comparator's format; return the path.

    Answers are paired by prompt and sample. ``judge`` (a ``checks.pairwise_judge`` or a judge model
    string) scores each pair both answered, asked in both orders; its verdicts are also recorded in
    the call log (``pairwise`` annotations), where the Leaderboard's ratings count them.
    """
    columns = getattr(results, "columns", None)
    if columns is None or "model" not in columns or "response" not in columns:
        raise TypeError("export_llm_comparator takes compare()'s DataFrame or llmkit.calls.to_dataframe(...)")
    present = list(dict.fromkeys(results["model"].astype(str)))
    if model_a == model_b or model_a not in present or model_b not in present:
        raise ValueError(
            f"export_llm_comparator compares two different models of the frame: model_a={model_a!r},"
            f" model_b={model_b!r}; the frame has {', '.join(present) or 'no rows'}"
        )
    pairs = _pairs(_rows(results), model_a, model_b)
    verdicts = _judge(pairs, judge, concurrency) if judge is not None else [None] * len(pairs)
    fields = _fields(results)
    document = {
        "metadata": {"source_path": "llmkit", "custom_fields_schema": [{"name": n, "type": t} for n, t in fields]},
        "models": [{"name": model_a}, {"name": model_b}],
        "examples": [_example(a, b, verdict, fields) for (a, b), verdict in zip(pairs, verdicts, strict=True)],
        "rationale_clusters": [],
    }
    return _write(Path(path), document)


def _rows(results: Any) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = results.to_dict("records")
    for row in rows:
        for name, value in list(row.items()):
            row[name] = _plain(value)
        for name, value in _logged_checks_of(row.get("annotations")).items():  # a log slice's check scores
            if isinstance(value, dict):
                row.setdefault("check_" + name, value.get("score"))
    return rows


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, (str, bool, dict, list)):
        return value
    if type(value).__name__ in ("NAType", "NaTType"):
        return None
    if hasattr(value, "item"):  # numpy numbers
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _pairs(rows: list[dict[str, Any]], model_a: str, model_b: str) -> list[tuple[dict, dict]]:
    """(row of A, row of B) answering the same prompt and sample, in the frame's order."""
    by_key: dict[tuple, dict[str, dict]] = {}
    seen: dict[tuple, int] = {}
    for row in rows:
        if row["model"] not in (model_a, model_b):
            continue
        key: tuple[Any, ...]
        if "prompt_index" in row:  # compare()'s frame
            key = (row["prompt_index"], row.get("sample", 0))
        else:  # a log slice: the same prompt in one run, the n-th time for each model
            base = (
                row.get("run_id"),
                json.dumps(row.get("messages") or row.get("prompt"), sort_keys=True, default=str),
            )
            n = seen[(base, row["model"])] = seen.get((base, row["model"]), -1) + 1
            key = (*base, n)
        by_key.setdefault(key, {})[row["model"]] = row
    return [(pair[model_a], pair[model_b]) for pair in by_key.values() if len(pair) == 2]


def _judge(pairs: list[tuple[dict, dict]], judge: Any, concurrency: int) -> list[Any]:
    from llmkit import aio
    from llmkit.checks import pairwise_judge
    from llmkit.params import get_llm_provider

    judge = pairwise_judge(judge) if isinstance(judge, str) else judge
    if not getattr(judge, "pairwise", False):
        raise TypeError(f"judge must be a checks.pairwise_judge(...) or a judge model string, got {judge!r}")
    get_llm_provider(judge.model)  # an unknown judge stops here, before any call

    async def all_verdicts() -> list[Any]:
        import asyncio

        limit = asyncio.Semaphore(concurrency)

        async def one(a: dict, b: dict) -> Any:
            if a.get("status") != "ok" or b.get("status") != "ok":
                return None
            async with limit:
                return await judge.averdict(a.get("prompt"), a.get("response") or "", b.get("response") or "")

        return await asyncio.gather(*(one(a, b) for a, b in pairs))

    verdicts = aio.run_sync(all_verdicts())
    _record(pairs, verdicts, judge)
    return verdicts


def _record(pairs: list[tuple[dict, dict]], verdicts: list[Any], judge: Any) -> None:
    from llmkit.calllog import config
    from llmkit.evals.scoring import verdict_annotations

    items = [
        item
        for (a, b), verdict in zip(pairs, verdicts, strict=True)
        if verdict is not None and a.get("call_id") and b.get("call_id")
        for item in verdict_annotations(a["call_id"], b["call_id"], judge, verdict)
    ]
    if items and config.log_mode() != "off":
        import llmkit

        llmkit.calls.annotate_many(items, source="judge")


def _fields(results: Any) -> list[tuple[str, str]]:
    """(name, type) of each custom field: the per-model figures, check scores and passed."""
    names = [name for name in _NUMBERS if name in results.columns]
    checks = sorted({c for c in results.columns if c.startswith("check_")} | _logged_checks(results))
    fields = [(name, "per_model_number") for name in (*names, *checks)]
    if "passed" in results.columns:
        fields.append(("passed", "per_model_boolean"))
    if "status" in results.columns:
        fields.append(("status", "per_model_category"))
    if "sample" in results.columns:
        fields.append(("sample", "number"))
    return fields


def _logged_checks(results: Any) -> set[str]:
    if "annotations" not in results.columns:
        return set()
    return {"check_" + name for annotations in results["annotations"] for name in _logged_checks_of(annotations)}


def _logged_checks_of(annotations: Any) -> dict[str, Any]:
    checks = annotations.get(CHECKS) if isinstance(annotations, dict) else None
    return checks if isinstance(checks, dict) else {}


def _example(a: dict, b: dict, verdict: Any, fields: list[tuple[str, str]]) -> dict[str, Any]:
    custom: dict[str, Any] = {}
    for name, kind in fields:
        if kind == "number":
            custom[name] = a.get(name)
        elif kind == "per_model_category":
            custom[name] = [_text(a.get(name)), _text(b.get(name))]
        else:
            custom[name] = [a.get(name), b.get(name)]
    raters = [] if verdict is None else [{**rating, "custom_fields": {}} for rating in verdict.ratings]
    return {
        "input_text": prompt_text(a.get("prompt")),
        "tags": list(a["tags"]) if isinstance(a.get("tags"), list) else [],
        "output_text_a": _output(a),
        "output_text_b": _output(b),
        "score": None if verdict is None else verdict.score,
        "individual_rater_scores": raters,
        "rationale_list": [],
        "custom_fields": custom,
    }


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _output(row: dict[str, Any]) -> str:
    if row.get("status") not in (None, "ok"):
        return f"[{row.get('status')}] {row.get('error') or row.get('error_message') or ''}".strip()
    return row.get("response") or ""


def _write(path: Path, document: dict[str, Any]) -> Path:
    """Write the file whole or not at all: a temporary file beside it, then renamed over it."""
    text = json.dumps(document, ensure_ascii=False, allow_nan=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise
    return path
