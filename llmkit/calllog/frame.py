"""The log as pandas DataFrames: typed columns, summaries, exports. Loaded only when used."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

from llmkit.calllog.record import COLUMNS, JSON_COLUMNS
from llmkit.calllog.store import ANNOTATION_COLUMNS

try:
    import numpy as np
    import pandas as pd
except ImportError:  # pragma: no cover - depends on the environment
    raise ImportError("llmkit's DataFrames need pandas: pip install 'llmkit[dataframe]'") from None

__all__ = ["annotations_frame", "read_export", "rows_where", "summary", "summary_table", "to_dataframe", "writer_for"]

CATEGORIES = ("model", "provider", "kind", "status", "source")
INTEGERS = ("prompt_tokens", "completion_tokens", "total_tokens", "status_code")
FLOATS = ("latency_ms", "ttft_ms", "tokens_per_s", "cost_usd")
TEXTS = ("call_id", "handler_model", "prompt", "response", "finish_reason", "error_type", "error_message", "run_id")


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
        elif name == "tokens_estimated":
            data[name] = pd.array([None if v is None or v != v else bool(v) for v in values], dtype="boolean")
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
    return pd.array(_objects(values), dtype="string[python]")  # the quickest string dtype to build


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
    columns = dict(zip(ANNOTATION_COLUMNS, zip(*rows))) if rows else {name: () for name in ANNOTATION_COLUMNS}
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


def rows_where(df: pd.DataFrame, column: str, keep: Callable[[Any], bool]) -> pd.DataFrame:
    """The rows whose ``column`` value passes ``keep``, renumbered from 0."""
    mask = np.fromiter((bool(keep(value)) for value in df[column]), dtype=bool, count=len(df))
    return df[mask].reset_index(drop=True)


def summary(df: pd.DataFrame) -> pd.DataFrame:
    """One row per model: calls, error rate, latency and TTFT p50/p95, median tokens/s, tokens, cost."""
    grouped = df.groupby("model", observed=True, sort=True)
    out = pd.DataFrame(
        {
            "calls": grouped.size(),
            "error_rate": grouped["status"].agg(lambda s: float((s != "ok").mean())),
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
    return out


def summary_table(columns: dict[str, list]) -> pd.DataFrame:
    """The table :func:`summary` makes, from a summary a store computed (``model`` and its columns)."""
    out = pd.DataFrame(
        {
            "calls": np.array(columns["calls"], dtype="int64"),
            **{name: np.array(columns[name], dtype=float) for name in SUMMARY_FLOATS},
            "total_tokens": pd.array(np.array(columns["total_tokens"], dtype=float), dtype="Int64"),
            "cost_usd": np.array(columns["cost_usd"], dtype=float),
        },
        index=pd.Index(columns["model"], dtype=object, name="model"),
    )
    out.index = out.index.astype(str)  # the same dtype as summary()'s
    return out


SUMMARY_FLOATS = (
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
            [None if v is None else json.dumps(v, ensure_ascii=False) for v in out[name]], dtype="string[python]"
        )
    return out


def _write_csv(df: pd.DataFrame, path: Path) -> None:
    out = _flat(df)
    out["started_at"] = out["started_at"].map(lambda t: t.isoformat())
    out.to_csv(path, index=False)


def _write_jsonl(df: pd.DataFrame, path: Path) -> None:
    out = df.copy()
    out["started_at"] = out["started_at"].map(lambda t: t.isoformat())
    with open(path, "w", encoding="utf-8") as f:
        for record in out.to_dict("records"):
            f.write(json.dumps({k: _plain(v) for k, v in record.items()}, ensure_ascii=False) + "\n")


def _plain(value: Any) -> Any:
    if value is pd.NA or (isinstance(value, float) and value != value):
        return None
    if isinstance(value, np.generic):
        return value.item()
    return value


def _write_parquet(df: pd.DataFrame, path: Path) -> None:
    _flat(df).to_parquet(path, index=False)


def read_export(path: Path) -> pd.DataFrame:
    """A file written by ``export`` as the DataFrame it was made from."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        raw = pd.read_csv(path, dtype=object, keep_default_na=False, na_values=[""])
        records = raw.astype(object).where(raw.notna(), None).to_dict("list")
    elif suffix == ".jsonl":
        with open(path, encoding="utf-8") as f:
            lines = [json.loads(line) for line in f if line.strip()]
        records = {name: [line.get(name) for line in lines] for name in (*COLUMNS, "annotations")}
    elif suffix == ".parquet":
        _require_pyarrow()
        raw = pd.read_parquet(path)
        records = raw.astype(object).where(raw.notna(), None).to_dict("list")
    else:
        raise ValueError(f"cannot tell the format of {path}: name it .csv, .jsonl or .parquet")
    if suffix != ".jsonl":
        for name in (*JSON_COLUMNS, "annotations"):
            records[name] = [None if v is None else json.loads(v) for v in records[name]]
        for name in (*INTEGERS, *FLOATS):
            records[name] = [None if v is None else float(v) for v in records[name]]
        records["tokens_estimated"] = [_boolean(v) for v in records["tokens_estimated"]]
    df = typed(records)
    df["annotations"] = _objects(records["annotations"])
    return df


def _boolean(value: Any) -> Any:
    if isinstance(value, str):
        return value == "True" or value == "true"
    return value
