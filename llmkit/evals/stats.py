"""Per-model evaluation figures from the call log: pass rates with a Wilson interval, and the spread
of means across repeated samples. They read each call's latest annotations (the check results and
the sample number compare() recorded), so they work on any slice of the log.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from llmkit.evals.scoring import CHECKS, SAMPLE

if TYPE_CHECKING:
    import pandas as pd


__all__ = ["evaluation_columns", "has_evaluations", "wilson"]

Z95 = 1.959963984540054  # the normal quantile of a two-sided 95% interval


def wilson(passed: int, total: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of a pass rate (``passed`` of ``total``); (nan, nan) when total is 0."""
    if total <= 0:
        return math.nan, math.nan
    rate = passed / total
    denominator = 1 + z * z / total
    centre = (rate + z * z / (2 * total)) / denominator
    half = z * math.sqrt(rate * (1 - rate) / total + z * z / (4 * total * total)) / denominator
    low = 0.0 if passed == 0 else max(0.0, centre - half)  # exact at the ends, where rounding strays
    high = 1.0 if passed == total else min(1.0, centre + half)
    return low, high


def has_evaluations(annotation_rows: Any) -> bool:
    """Whether any call was checked or sampled, from annotation rows ``(call_id, name, value, ...)``:
    when none was, a summary has no evaluation columns and need not read the calls for them."""
    return any(row[1] == CHECKS or row[1] == SAMPLE for row in annotation_rows)


def _passed(annotations: Any) -> bool | None:
    """Whether every check on a call passed; None when no check scored it."""
    results = annotations.get(CHECKS) if isinstance(annotations, dict) else None
    if not isinstance(results, dict) or not results:
        return None
    return all(isinstance(value, dict) and value.get("passed") is True for value in results.values())


def _sample(annotations: Any) -> Any:
    return annotations.get(SAMPLE) if isinstance(annotations, dict) else None


def evaluation_columns(calls: pd.DataFrame) -> pd.DataFrame:
    """Columns to add to a per-model summary of ``calls`` (a frame of the log with ``model``,
    ``latency_ms`` and ``annotations``), indexed by model; empty when nothing was checked or sampled.

    - ``checked``, ``pass_rate``, ``pass_rate_low``, ``pass_rate_high``: calls checked, the share
      that passed every check, and its 95% Wilson interval;
    - ``samples``, ``latency_mean_ms``, ``latency_sd_ms`` (and ``pass_rate_sd``): how many samples,
      the mean latency, and the standard deviation of the per-sample means across samples.
    """
    import pandas as pd

    # Most calls of a log carry no evaluation: find the ones that do before building anything.
    annotations = calls["annotations"].to_numpy(dtype=object)
    marked = [i for i, a in enumerate(annotations) if type(a) is dict and (CHECKS in a or SAMPLE in a)]
    if not marked:
        return pd.DataFrame(index=pd.Index([], name="model"))
    calls = calls.iloc[marked]
    frame = pd.DataFrame(
        {
            "model": calls["model"].to_numpy(dtype=object).astype(str),
            "latency_ms": calls["latency_ms"].to_numpy(dtype=float),
            "passed": [_passed(annotations[i]) for i in marked],
            "sample": [_sample(annotations[i]) for i in marked],
        }
    )
    out = pd.DataFrame(index=pd.Index(sorted(frame["model"].unique()), name="model"))
    checked = frame[frame["passed"].notna()]
    if len(checked):
        counts = checked.groupby("model")["passed"].agg(["size", "sum"]).reindex(out.index, fill_value=0)
        out["checked"] = counts["size"].astype(int)
        out["pass_rate"] = [p / n if n else math.nan for p, n in zip(counts["sum"], counts["size"], strict=True)]
        bounds = [wilson(int(p), int(n)) for p, n in zip(counts["sum"], counts["size"], strict=True)]
        out["pass_rate_low"] = [low for low, _ in bounds]
        out["pass_rate_high"] = [high for _, high in bounds]
    sampled = frame[frame["sample"].notna()]
    if len(sampled) and sampled["sample"].nunique() > 1:
        out = out.join(_sample_spread(sampled, bool(len(checked))))
    return out


def _sample_spread(sampled: pd.DataFrame, checked: bool) -> pd.DataFrame:
    """Per model: samples, mean latency, and the standard deviation across samples of per-sample means."""
    import pandas as pd

    by_sample = sampled.groupby(["model", "sample"])
    per_sample = pd.DataFrame({"latency_ms": by_sample["latency_ms"].mean()})
    if checked:
        per_sample["pass_rate"] = by_sample["passed"].agg(lambda s: s.dropna().astype(float).mean())
    grouped = per_sample.groupby(level="model")
    spread = pd.DataFrame(
        {
            "samples": grouped.size().astype(int),
            "latency_mean_ms": sampled.groupby("model")["latency_ms"].mean(),
            "latency_sd_ms": grouped["latency_ms"].std(),
        }
    )
    if checked:
        spread["pass_rate_sd"] = grouped["pass_rate"].std()
    return spread
