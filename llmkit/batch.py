"""``llmkit.compare``: every prompt against every model, concurrently, as one DataFrame.

Calls stream (so time to first token is measured) through the ordinary dispatcher with
``source="batch"``, inside a call-log capture carrying one run id, so each row is built from the
call's own log record and the whole run can be found again with ``llmkit.calls.to_dataframe(run_id=...)``.
"""

from __future__ import annotations

import threading
import uuid
from typing import Any, Iterable

from llmkit import aio
from llmkit.calllog.recorder import capture

__all__ = ["compare", "side_by_side"]

#: Columns of compare()'s DataFrame, one row per (prompt, model).
ROW_FIELDS = (
    "prompt_index",
    "prompt",
    "model",
    "response",
    "status",
    "error",
    "latency_ms",
    "ttft_ms",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "tokens_estimated",
    "tokens_per_s",
    "cost_usd",
    "call_id",
    "run_id",
)


def compare(
    models: str | Iterable[str],
    prompts: Any,
    *,
    system: str | None = None,
    concurrency: int = 8,
    per_model_concurrency: int | None = None,
    progress: bool = True,
    **params: Any,
) -> Any:
    """Run every prompt against every model and return one DataFrame row per (prompt, model).

    ``prompts`` is a list (or pandas Series) of strings or of chat message lists; ``system`` adds a
    system message to each. At most ``concurrency`` calls are in flight, and at most
    ``per_model_concurrency`` per model when given. Other keyword arguments go to every call.
    A failed call is a row with ``status="error"`` and the error; Ctrl-C (KeyboardInterrupt) stops the
    run and returns the rows finished so far. The rows are also in ``llmkit.calls`` under one
    ``run_id``, with ``source="batch"``. :func:`side_by_side` turns the result into a wide table.
    """
    _require_extras()
    model_list = [models] if isinstance(models, str) else list(models)
    labels, prompt_list = _prompts(prompts)
    _check(model_list, prompt_list, concurrency, per_model_concurrency)
    params.setdefault("source", "batch")
    run_id = uuid.uuid4().hex
    jobs = [(i, model) for i in range(len(prompt_list)) for model in model_list]
    rows: dict[tuple[int, str], dict[str, Any]] = {}
    bar = _progress_bar(len(jobs), progress)
    run = _run(jobs, prompt_list, system, model_list, concurrency, per_model_concurrency, params, run_id, rows, bar)
    stopped = threading.Event()
    try:
        aio.run_sync(_signal_when_done(run, stopped))
    except KeyboardInterrupt:
        stopped.wait(timeout=5)  # let cancelled calls be recorded before the rows are read
    finally:
        if bar is not None:
            bar.close()
    ordered = [rows[job] for job in jobs if job in rows]
    for row in ordered:
        row["prompt_index"] = labels[row["prompt_index"]]
    return _frame(ordered)


def side_by_side(results: Any, value: str = "response") -> Any:
    """compare()'s rows as a wide table: one row per prompt, one column per model, cells ``value``."""
    import pandas as pd

    if value not in results.columns:
        raise ValueError(f"value must be one of compare()'s columns ({', '.join(results.columns)}), got {value!r}")
    models = list(dict.fromkeys(results["model"]))
    wide = results.pivot(index=["prompt_index", "prompt"], columns="model", values=value)
    wide = wide.reindex(columns=models)
    wide.columns = pd.Index(models, name=None)
    return wide.reset_index(level="prompt")


# -- running ----------------------------------------------------------------------------------------
async def _signal_when_done(run: Any, stopped: threading.Event) -> None:
    try:
        await run
    finally:
        stopped.set()


async def _run(jobs, prompts, system, models, concurrency, per_model, params, run_id, rows, bar) -> None:
    import asyncio

    limit = asyncio.Semaphore(concurrency)
    per_model_limits = {model: asyncio.Semaphore(per_model) for model in models} if per_model else {}

    async def one(index: int, model: str) -> None:
        model_limit = per_model_limits.get(model)
        if model_limit is not None:
            async with model_limit, limit:
                await _call(index, model)
        else:
            async with limit:
                await _call(index, model)

    async def _call(index: int, model: str) -> None:
        messages = _messages(prompts[index], system)
        with capture(run_id) as captured:
            try:
                from llmkit.dispatch import acompletion

                stream = await acompletion(model=model, messages=messages, stream=True, **params)
                async for _ in stream:
                    pass
            except Exception:
                pass  # the failure is in the record, and becomes the row
        records = captured.records
        if records:
            rows[(index, model)] = _row(index, prompts[index], model, records[-1])
        if bar is not None:
            bar.update(1)

    tasks = [asyncio.ensure_future(one(index, model)) for index, model in jobs]
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _row(index: int, prompt: Any, model: str, record: dict[str, Any]) -> dict[str, Any]:
    row = {name: record.get(name) for name in ROW_FIELDS}
    row.update(prompt_index=index, prompt=prompt if isinstance(prompt, str) else record.get("prompt"), model=model)
    if record["status"] != "ok":
        parts = [record.get("error_type"), record.get("error_message")]
        row["error"] = ": ".join(str(part) for part in parts if part) or record["status"]
    return row


def _messages(prompt: Any, system: str | None) -> list[dict[str, Any]]:
    messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)
    if system is not None:
        messages.insert(0, {"role": "system", "content": system})
    return messages


# -- inputs and outputs -----------------------------------------------------------------------------
def _prompts(prompts: Any) -> tuple[list[Any], list[Any]]:
    """(labels, prompts): a Series keeps its index as the labels; a list is numbered from 0."""
    if isinstance(prompts, str):
        raise TypeError("prompts must be a list (or a pandas Series) of prompts, not one string; wrap it: [prompt]")
    if hasattr(prompts, "index") and hasattr(prompts, "tolist"):  # a pandas Series
        return list(prompts.index), prompts.tolist()
    prompt_list = list(prompts)
    return list(range(len(prompt_list))), prompt_list


def _check(models: list, prompts: list, concurrency: Any, per_model: Any) -> None:
    if not models or not all(isinstance(m, str) and m for m in models):
        raise ValueError(f"models must be a non-empty list of 'provider/model' strings, got {models!r}")
    if len(set(models)) != len(models):
        raise ValueError(f"models must not repeat, got {models!r}")
    for prompt in prompts:
        if not isinstance(prompt, (str, list)):
            raise TypeError(
                f"each prompt must be a string or a list of chat messages, got {type(prompt).__name__}: {prompt!r:.80}"
            )
    for name, value in (("concurrency", concurrency), ("per_model_concurrency", per_model)):
        if value is None and name == "per_model_concurrency":
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a whole number >= 1, got {value!r}")


def _require_extras() -> None:
    try:
        import pandas  # noqa: F401
        import tqdm  # noqa: F401
    except ImportError as exc:
        raise ImportError(f"llmkit.compare needs pandas and tqdm ({exc}): pip install 'llmkit[dataframe]'") from None


def _progress_bar(total: int, enabled: bool) -> Any:
    if not enabled:
        return None
    from tqdm.auto import tqdm  # a widget in notebooks, text in a terminal

    return tqdm(total=total, desc="llmkit.compare", unit="call")


def _frame(rows: list[dict[str, Any]]) -> Any:
    import pandas as pd

    df = pd.DataFrame(rows, columns=list(ROW_FIELDS))
    for name in ("prompt_tokens", "completion_tokens", "total_tokens"):
        df[name] = df[name].astype("Int64")
    df["tokens_estimated"] = df["tokens_estimated"].astype("boolean")
    df["status"] = df["status"].astype("category")
    for name in ("latency_ms", "ttft_ms", "tokens_per_s", "cost_usd"):
        df[name] = df[name].astype(float)
    return df
