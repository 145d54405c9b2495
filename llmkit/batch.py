"""``llmkit.compare``: every prompt against every model, k samples each, concurrently, as one DataFrame.

Calls stream (so time to first token is measured) through the ordinary dispatcher with
``source="batch"``, inside a call-log capture carrying one run id, so each row is built from the
call's own log record and the whole run can be found again with ``llmkit.calls.to_dataframe(run_id=...)``.

The run is a list of :class:`Job` handed to a backend (``llmkit.backends``: this process, or a Ray
cluster), which calls ``on_row`` with each finished row. Checks (``llmkit.evals.scoring``) score
rows as they arrive, here in the caller's process whatever the backend.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from llmkit import aio, backends
from llmkit.backends.jobs import ROW_FIELDS, Job
from llmkit.backends.local import run_jobs

if TYPE_CHECKING:
    import pandas as pd


__all__ = ["Job", "compare", "run_jobs", "side_by_side"]


def compare(
    models: str | Iterable[str],
    prompts: Any,
    *,
    system: str | None = None,
    samples: int = 1,
    checks: Any = None,
    concurrency: int = 8,
    per_model_concurrency: int | None = None,
    progress: bool = True,
    backend: Any = "local",
    **params: Any,
) -> pd.DataFrame:
    """Run every prompt against every model, ``samples`` times each, and return one DataFrame row per
    (prompt, model, sample).

    ``prompts`` is a list (or pandas Series) of strings or of chat message lists; ``system`` adds a
    system message to each. Sample ``i`` is called with ``sample=i`` (each its own cache entry) and
    shows in the ``sample`` column. ``checks`` (see :mod:`llmkit.checks`) score each answer as it
    arrives: one ``check_<name>`` column each (the score) and ``passed`` (every check passed), and
    each result is recorded in the call log as an annotation on the call. At most ``concurrency``
    calls are in flight, and at most ``per_model_concurrency`` per model when given. Other keyword
    arguments go to every call. A failed call is a row with ``status="error"`` and the error; Ctrl-C
    (KeyboardInterrupt) stops the run and returns the rows finished so far. The rows are also in
    ``llmkit.calls`` under one ``run_id``, with ``source="batch"``. :func:`side_by_side` turns the
    result into a wide table.

    ``backend="ray"`` runs the calls on a Ray cluster (the one ``ray.init`` connected to, else a
    local one), with the same rows, order and run id; ``llmkit.backends.RayBackend(num_cpus=,
    num_gpus=, address=)`` sets its options (docs/scale.md). Checks run here either way.
    """
    _require_extras()
    runner_backend = backends.resolve(backend)
    model_list = [models] if isinstance(models, str) else list(models)
    labels, prompt_list = _prompts(prompts)
    _check(model_list, prompt_list, samples, concurrency, per_model_concurrency)
    from llmkit.evals.scoring import Scorer, prepare_checks

    check_list = prepare_checks(checks)  # before any call: a judge that does not exist stops the run here
    params.setdefault("source", "batch")
    run_id = uuid.uuid4().hex
    runner = runner_backend.open(params)  # connects, ships the providers; bad input stops the run here
    jobs = [
        Job(i, prompt, _messages(prompt, system), model, sample)
        for i, prompt in enumerate(prompt_list)
        for model in model_list
        for sample in range(samples)
    ]
    rows: dict[tuple[int, str, int], dict[str, Any]] = {}
    bar = _progress_bar(len(jobs), progress)
    scorer = Scorer(check_list, model_list, run_id, concurrency) if check_list else None

    def on_row(job: Job, row: dict[str, Any]) -> None:
        rows[(job.index, job.model, job.sample)] = row
        if scorer is not None:
            scorer.add(row)
        if bar is not None:
            bar.update(1)

    async def run() -> None:
        try:
            await runner(jobs, on_row, concurrency=concurrency, per_model=per_model_concurrency, run_id=run_id)
        finally:
            if scorer is not None:
                await scorer.finish()

    stopped = threading.Event()
    try:
        aio.run_sync(_signal_when_done(run(), stopped))
    except KeyboardInterrupt:
        stopped.wait(timeout=5)  # let cancelled calls be recorded before the rows are read
    finally:
        if bar is not None:
            bar.close()
    ordered = [rows[key] for key in ((j.index, j.model, j.sample) for j in jobs) if key in rows]
    _record(scorer, ordered, samples, run_id)
    for row in ordered:
        row["prompt_index"] = labels[row["prompt_index"]]
    return _frame(ordered, {} if scorer is None else scorer.columns(ordered))


def side_by_side(results: pd.DataFrame, value: str = "response") -> pd.DataFrame:
    """compare()'s rows as a wide table: one row per prompt (and sample), one column per model."""
    import pandas as pd

    if value not in results.columns:
        raise ValueError(f"value must be one of compare()'s columns ({', '.join(results.columns)}), got {value!r}")
    models = list(dict.fromkeys(results["model"]))
    several = "sample" in results.columns and results["sample"].nunique() > 1
    index = ["prompt_index", "sample", "prompt"] if several else ["prompt_index", "prompt"]
    wide = results.pivot(index=index, columns="model", values=value)
    wide = wide.reindex(columns=models)
    wide.columns = pd.Index(models, name=None)
    return wide.reset_index(level="prompt")


# -- running ----------------------------------------------------------------------------------------
async def _signal_when_done(run: Any, stopped: threading.Event) -> None:
    try:
        await run
    finally:
        stopped.set()


def _record(scorer: Any, rows: list[dict[str, Any]], samples: int, run_id: str) -> None:
    """Write the run's check results (and sample numbers) to the call log as annotations, at once."""
    from llmkit.calllog import config

    if config.log_mode() == "off" or (scorer is None and samples == 1):
        return  # the DataFrame has the results; there is no log to put them in, or nothing to put
    import llmkit

    if samples > 1:
        from llmkit.evals.scoring import SAMPLE

        items = [(row["call_id"], SAMPLE, row["sample"], run_id) for row in rows if row.get("call_id")]
        llmkit.calls.annotate_many(items, source="compare")
    if scorer is not None:
        llmkit.calls.annotate_many(scorer.annotations(), source="check", encoded=True)


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


def _check(models: list, prompts: list, samples: Any, concurrency: Any, per_model: Any) -> None:
    if not models or not all(isinstance(m, str) and m for m in models):
        raise ValueError(f"models must be a non-empty list of 'provider/model' strings, got {models!r}")
    if len(set(models)) != len(models):
        raise ValueError(f"models must not repeat, got {models!r}")
    for prompt in prompts:
        if not isinstance(prompt, (str, list)):
            raise TypeError(
                f"each prompt must be a string or a list of chat messages, got {type(prompt).__name__}: {prompt!r:.80}"
            )
    for name, value in (("samples", samples), ("concurrency", concurrency), ("per_model_concurrency", per_model)):
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


def _frame(rows: list[dict[str, Any]], checked: dict[str, list]) -> pd.DataFrame:
    """The DataFrame of ``rows``, typed, with the checks' columns (``check_<name>``, ``passed``) last."""
    import pandas as pd

    df = pd.DataFrame(rows, columns=list(ROW_FIELDS))
    df["sample"] = df["sample"].astype(int)
    for name in ("prompt_tokens", "completion_tokens", "total_tokens"):
        df[name] = df[name].astype("Int64")
    df["tokens_estimated"] = df["tokens_estimated"].astype("boolean")
    df["status"] = df["status"].astype("category")
    for name in ("latency_ms", "ttft_ms", "tokens_per_s", "cost_usd"):
        df[name] = df[name].astype(float)
    for name, values in checked.items():
        df[name] = pd.array(values, dtype="boolean") if name == "passed" else pd.array(values, dtype=float)
    return df
