"""The log as pandas DataFrames: typed columns, summaries, exports. Loaded only when used."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from llmkit.calllog.record import COLUMNS, JSON_COLUMNS
from llmkit.calllog.store import ANNOTATION_COLUMNS

try:
    import numpy as np
    import pandas as pd
except ImportError:  # pragma: no cover - depends on the environment
    raise ImportError("llmkit's DataFrames need pandas: pip install 'llmkit[dataframe]'") from None

__all__ = ["annotations_frame", "read_export", "summary", "summary_table", "to_dataframe", "writer_for"]

CATEGORIES = ("model", "provider", "kind", "status", "source", "user")
INTEGERS = ("prompt_tokens", "completion_tokens", "total_tokens", "status_code")
FLOATS = ("latency_ms", "ttft_ms", "tokens_per_s", "cost_usd")
BOOLEANS = ("tokens_estimated", "cache_hit")
TEXTS = (
    "call_id", "handler_model", "prompt", "response", "finish_reason", "error_type", "error_message", "run_id",
    "error_traceback", "session_id", "conversation_id",
)  # fmt: skip


def to_dataframe(columns: dict[str, list], annotation_rows: list[tuple]) -> pd.DataFrame:
    """The DataFrame of a store's columns (see ``store.Store.read``)."""
    df = typed(columns)
    df["annotations"] = _latest_annotations(df["call_id"], annotation_rows)
    return df


def typed(columns: dict[str, Any]) -> pd.DataFrame:
    """A DataFrame of the log's columns with their dtypes, from sequences of plain values."""
    data: dict[str, Any] = {}
    for name in COLUMNS:
        values = columns[name]
        if name == "started_at":
            data[name] = _times(values)
        elif name in CATEGORIES:
            data[name] = _categorical(values)
        elif name in INTEGERS:
            data[name] = pd.array(np.array(values, dtype=float), dtype="Int64")  # NaN (from None) -> <NA>
        elif name in FLOATS:
            data[name] = np.array(values, dtype=float)
        elif name in BOOLEANS:
            data[name] = _booleans(values)
        elif name in TEXTS:
            data[name] = _strings(values)
        else:  # lists and dicts
            data[name] = _objects(values)
    return pd.DataFrame(data)


def _categorical(values: Any) -> pd.Categorical:
    # factorize on an object array is several times faster than Categorical(list of str).
    codes, uniques = pd.factorize(_objects(values), sort=True)
    return pd.Categorical.from_codes(codes, categories=pd.Index(uniques, dtype="string[python]"))


def _strings(values: Any) -> Any:
    if isinstance(values, list) and values and values.count(None) == len(values):  # no call filled it: NA made once
        return pd.array([None], dtype="string[python]").take(np.zeros(len(values), dtype=np.intp))
    return pd.array(_objects(values), dtype="string[python]")  # the quickest string dtype to build


def _booleans(values: Any) -> Any:
    """True/False, NA for None or NaN; any other value as Python's bool() takes it."""
    objects = _objects(values)
    missing = pd.isna(objects)
    return pd.arrays.BooleanArray(np.where(missing, False, objects).astype(bool), missing)


def _objects(values: Any) -> np.ndarray:
    # fromiter keeps each list or dict as one element, where np.array would look inside them.
    return np.fromiter(values, dtype=object, count=len(values))


def _times(values: Any) -> Any:
    if len(values) and isinstance(values[0], str):  # read back from CSV or JSONL
        return pd.DatetimeIndex(pd.to_datetime(list(values), utc=True, format="ISO8601"))
    if len(values) and isinstance(values[0], pd.Timestamp):  # read back from Parquet
        return pd.DatetimeIndex(pd.to_datetime(list(values), utc=True))
    return pd.to_datetime(np.array(values, dtype=float), unit="s", utc=True)


def _latest_annotations(call_ids: pd.Series, rows: list[tuple]) -> np.ndarray:
    latest: dict[str, dict[str, Any]] = {}
    for call_id, name, value, *_ in rows:
        latest.setdefault(call_id, {})[name] = json.loads(value) if value is not None else None
    if not latest:
        return _objects([None] * len(call_ids))
    return _objects([latest.get(call_id) for call_id in call_ids])


def annotations_frame(rows: list[tuple]) -> pd.DataFrame:
    columns = (
        dict(zip(ANNOTATION_COLUMNS, zip(*rows, strict=True), strict=True))
        if rows
        else {name: () for name in ANNOTATION_COLUMNS}
    )
    return pd.DataFrame(
        {
            "call_id": pd.array(columns["call_id"], dtype="string[python]"),
            "name": pd.array(columns["name"], dtype="string[python]"),
            "value": _objects([None if v is None else json.loads(v) for v in columns["value"]]),
            "group_id": pd.array(columns["group_id"], dtype="string[python]"),
            "source": pd.array(columns["source"], dtype="string[python]"),
            "created_at": pd.to_datetime(np.array(columns["created_at"], dtype=float), unit="s", utc=True),
        }
    )


def summary(df: pd.DataFrame, by: str = "model") -> pd.DataFrame:
    """One row per model (or value of ``by``): calls, error rate, latency and TTFT p50/p95, median
    tokens/s, tokens, cost. What a store's ``summary`` computes in its database, from a DataFrame.

    The figures are the live calls'; answers from the response cache are counted in ``cache_hits``.
    """
    hit = df["cache_hit"].fillna(False).to_numpy(dtype=bool)
    hits = pd.Series(hit, index=df.index).groupby(df[by], observed=True, sort=True).sum()
    grouped = df[~hit].groupby(by, observed=True, sort=True)
    out = pd.DataFrame(
        {
            "calls": grouped.size(),
            "error_rate": grouped["status"].agg(lambda s: float((s != "ok").mean())).astype(float),
            "latency_p50_ms": grouped["latency_ms"].quantile(0.5),
            "latency_p95_ms": grouped["latency_ms"].quantile(0.95),
            "ttft_p50_ms": grouped["ttft_ms"].quantile(0.5),
            "ttft_p95_ms": grouped["ttft_ms"].quantile(0.95),
            "tokens_per_s_median": grouped["tokens_per_s"].median(),
            "total_tokens": grouped["total_tokens"].sum(min_count=1).astype("Int64"),
            "cost_usd": grouped["cost_usd"].sum(min_count=1),
        }
    )
    out.index = out.index.astype(str)
    out = out.reindex(pd.Index(hits.index.astype(str), name=by))  # a model answered only from the cache too
    out["calls"] = out["calls"].fillna(0).astype("int64")
    out["cache_hits"] = hits.to_numpy().astype("int64")
    return out


def summary_table(columns: dict[str, list], by: str = "model") -> pd.DataFrame:
    """The table :func:`summary` makes, from the columns a store's ``summary`` computed."""
    out = pd.DataFrame(
        {
            "calls": np.array(columns["calls"], dtype="int64"),
            **{name: np.array(columns[name], dtype=float) for name in _SUMMARY_FLOATS},
            "total_tokens": pd.array(np.array(columns["total_tokens"], dtype=float), dtype="Int64"),
            "cost_usd": np.array(columns["cost_usd"], dtype=float),
            "cache_hits": np.array(columns["cache_hits"], dtype="int64"),
        },
        index=pd.Index(columns[by], dtype=object, name=by),
    )
    out.index = out.index.astype(str)  # the same dtype as summary()'s
    return out


_SUMMARY_FLOATS = (
    "error_rate", "latency_p50_ms", "latency_p95_ms", "ttft_p50_ms", "ttft_p95_ms", "tokens_per_s_median"
)  # fmt: skip


# -- files ------------------------------------------------------------------------------------------
def writer_for(path: Path) -> Callable[[pd.DataFrame, Path], None]:
    suffix = path.suffix.lower()
    writers = {".csv": _write_csv, ".jsonl": _write_jsonl, ".parquet": _write_parquet}
    if suffix not in writers:
        raise ValueError(f"cannot tell the format of {path}: name it .csv, .jsonl or .parquet")
    if suffix == ".parquet":
        _require_pyarrow()
    return writers[suffix]


def _require_pyarrow() -> None:
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        raise ImportError("writing and reading Parquet needs pyarrow: pip install pyarrow") from None


def _flat(df: pd.DataFrame) -> pd.DataFrame:
    """JSON text in place of lists and dicts, which CSV and Parquet cannot hold as such."""
    out = df.copy()
    for name in (*JSON_COLUMNS, "annotations"):
        out[name] = pd.array(
            [None if v is None else json.dumps(_plain(v), ensure_ascii=False) for v in out[name]],
            dtype="string[python]",
        )
    return out


def _write_csv(df: pd.DataFrame, path: Path) -> None:
    out = _flat(df)
    out["started_at"] = out["started_at"].map(lambda t: t.isoformat())
    out.to_csv(path, index=False)


def _write_jsonl(df: pd.DataFrame, path: Path) -> None:
    """One strict JSON object per line: NaN and infinities, which JSON has not, are written as null."""
    out = df.copy()
    out["started_at"] = out["started_at"].map(lambda t: t.isoformat())
    with open(path, "w", encoding="utf-8") as f:
        for record in out.to_dict("records"):
            f.write(json.dumps(_plain(record), ensure_ascii=False, allow_nan=False) + "\n")


def _plain(value: Any) -> Any:
    """``value`` with numpy scalars as Python ones and every missing or non-finite number as None."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, np.generic):
        value = value.item()
    if value is pd.NA or (isinstance(value, float) and not math.isfinite(value)):
        return None
    return value


def _write_parquet(df: pd.DataFrame, path: Path) -> None:
    _flat(df).to_parquet(path, index=False)


def read_export(path: Path) -> pd.DataFrame:
    """A file written by ``export`` as the DataFrame it was made from."""
    suffix = path.suffix.lower()
    records: dict[str, list[Any]]
    if suffix == ".csv":
        raw = pd.read_csv(path, dtype=object, keep_default_na=False, na_values=[""])
        records = _columns_of(raw)
    elif suffix == ".jsonl":
        with open(path, encoding="utf-8") as f:
            lines = [json.loads(line) for line in f if line.strip()]
        records = {name: [line.get(name) for line in lines] for name in (*COLUMNS, "annotations")}
    elif suffix == ".parquet":
        _require_pyarrow()
        raw = pd.read_parquet(path)
        records = _columns_of(raw)
    else:
        raise ValueError(f"cannot tell the format of {path}: name it .csv, .jsonl or .parquet")
    if suffix != ".jsonl":
        # a file exported before these columns existed
        for name in ("cache_hit", "user", "error_traceback", "session_id", "conversation_id"):
            records.setdefault(name, [None] * len(raw))
        for name in (*JSON_COLUMNS, "annotations"):
            records[name] = [None if v is None else json.loads(v) for v in records[name]]
        for name in (*INTEGERS, *FLOATS):
            records[name] = [None if v is None else float(v) for v in records[name]]
        for name in BOOLEANS:
            records[name] = [_boolean(v) for v in records[name]]
    df = typed(records)
    df["annotations"] = _objects(records["annotations"])
    return df


def _columns_of(raw: pd.DataFrame) -> dict[str, list[Any]]:
    """A file's columns as lists of plain values, None for a missing one."""
    return {str(name): values for name, values in raw.astype(object).where(raw.notna(), None).to_dict("list").items()}


def _boolean(value: Any) -> Any:
    if isinstance(value, str):
        return value == "True" or value == "true"
    return value
