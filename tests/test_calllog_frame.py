"""Reading the log: DataFrame dtypes, filters, summary, exports, last(n) and annotations."""

import datetime as dt
import json

import pandas as pd
import pytest
from calllog_support import USER

import llmkit
from llmkit.calllog import COLUMNS


def make_calls():
    llmkit.register_model_cost("demo/echo", input_cost_per_token=1e-6, output_cost_per_token=2e-6)
    llmkit.completion(model="demo/echo", messages=USER, metadata={"tags": ["eval"], "user": "ann"})
    llmkit.completion(model="demo/echo", messages=USER, stream=True, source="widget").text()
    with pytest.raises(llmkit.APIError):
        llmkit.completion(model="demo/fail", messages=USER, status_code=404, metadata={"user": "bob"})
    llmkit.image_generation("a cat", model="demo/image")


def test_dataframe_columns_and_dtypes(log):
    make_calls()
    df = log.to_dataframe()
    assert list(df.columns) == [*COLUMNS, "annotations"]
    assert len(df) == 4
    assert str(df["started_at"].dtype).startswith("datetime64") and str(df["started_at"].dt.tz) == "UTC"
    for name in ("model", "provider", "kind", "status"):
        assert isinstance(df[name].dtype, pd.CategoricalDtype), name
    for name in ("prompt_tokens", "completion_tokens", "total_tokens", "status_code"):
        assert df[name].dtype == "Int64", name
    assert df["tokens_estimated"].dtype == "boolean"
    assert df["latency_ms"].dtype == "float64"
    assert df["messages"][0] == USER and df["params"][0] == {}
    assert df.loc[df["kind"] == "image", "prompt_tokens"].isna().all()
    assert df["status_code"].tolist()[2] == 404
    assert df["cost_usd"][0] > 0 and pd.isna(df["cost_usd"][2])


def test_filters(log):
    make_calls()
    assert log.to_dataframe(model="demo/fail")["status"].tolist() == ["error"]
    assert len(log.to_dataframe(model=["demo/echo", "demo/image"])) == 3
    assert log.to_dataframe(status="error")["model"].tolist() == ["demo/fail"]
    assert log.to_dataframe(source="widget")["kind"].tolist() == ["stream"]
    assert len(log.to_dataframe(kind=["chat", "stream"])) == 3
    assert log.to_dataframe(tags="eval")["model"].tolist() == ["demo/echo"]
    assert log.to_dataframe(tags={"user": "bob"})["model"].tolist() == ["demo/fail"]
    assert len(log.to_dataframe(tags="user")) == 2
    assert len(log.to_dataframe(since=dt.timedelta(minutes=5))) == 4
    assert log.to_dataframe(since=dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=5)).empty
    assert len(log.to_dataframe(since="2000-01-01")) == 4
    assert log.to_dataframe(model="nothing").empty


def test_bad_filters_say_what_is_accepted(log):
    with pytest.raises(TypeError, match="filter by model, status, source"):
        log.to_dataframe(modle="demo/echo")
    with pytest.raises(ValueError, match="ISO"):
        log.to_dataframe(since="yesterday-ish")
    with pytest.raises(ValueError, match=">= 1"):
        log.last(0)


def test_last_n_is_newest_calls_oldest_first(log):
    for word in ("one", "two", "three", "four"):
        llmkit.completion(model="demo/echo", messages=[{"role": "user", "content": word}])
    assert [r["response"] for r in log.last(2)] == ["three", "four"]
    assert [r["response"] for r in log.last(1, model="demo/echo")] == ["four"]
    assert log.last(10)[0]["response"] == "one"
    last_two = log.to_dataframe(last=2)
    assert list(last_two["response"]) == ["three", "four"]
    assert last_two.dtypes.equals(log.to_dataframe().dtypes)
    assert list(log.to_dataframe(last=1, tags={"missing": 1})["response"]) == []


def test_summary_one_row_per_model(log):
    for _ in range(3):
        llmkit.completion(model="demo/lorem", messages=USER, stream=True, max_tokens=5, tokens_per_second=0).text()
    with pytest.raises(llmkit.APIError):
        llmkit.completion(model="demo/lorem", messages=USER, fail_after=1, tokens_per_second=0)
    llmkit.register_model_cost("demo/echo", input_cost_per_token=0.5)
    llmkit.completion(model="demo/echo", messages=USER)
    summary = log.summary()
    assert list(summary.index) == ["demo/echo", "demo/lorem"]
    lorem = summary.loc["demo/lorem"]
    assert lorem["calls"] == 4 and lorem["error_rate"] == 0.25
    assert lorem["ttft_p50_ms"] > 0 and lorem["latency_p95_ms"] >= lorem["latency_p50_ms"]
    assert lorem["total_tokens"] == log.to_dataframe(model="demo/lorem")["total_tokens"].sum()
    assert pd.isna(lorem["cost_usd"])
    assert summary.loc["demo/echo", "cost_usd"] > 0
    assert {"tokens_per_s_median", "ttft_p95_ms"} <= set(summary.columns)


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_export_round_trips(log, tmp_path, suffix):
    make_calls()
    log.annotate(log.last()[0]["call_id"], "vote", {"rank": 1})
    df = log.to_dataframe()
    path = log.export(tmp_path / f"calls{suffix}")
    back = log.read_export(path)
    pd.testing.assert_frame_equal(back, df, check_categorical=False, check_dtype=False)
    assert back.dtypes.astype(str).tolist() == df.dtypes.astype(str).tolist()


def test_export_jsonl_lines_are_plain_json(log, tmp_path):
    make_calls()
    lines = log.export(tmp_path / "x.jsonl", status="error").read_text().splitlines()
    (record,) = [json.loads(line) for line in lines]
    assert record["status_code"] == 404 and record["metadata"] == {"user": "bob"}
    assert record["started_at"].endswith("+00:00")


def test_export_refuses_unknown_extensions(log, tmp_path):
    with pytest.raises(ValueError, match=r"\.csv, \.jsonl or \.parquet"):
        log.export(tmp_path / "calls.xlsx")


def test_annotations_are_appended_and_shown_per_call(log):
    llmkit.completion(model="demo/echo", messages=USER)
    llmkit.completion(model="demo/lorem", messages=USER, tokens_per_second=0)
    first, second = (r["call_id"] for r in log.records())
    log.annotate([first, second], "vote", "tie", group_id="cmp-1", source="widget")
    log.annotate(first, "vote", "best", group_id="cmp-2", source="widget")
    notes = log.annotations()
    assert notes[["call_id", "value", "group_id"]].values.tolist() == [
        [first, "tie", "cmp-1"],
        [second, "tie", "cmp-1"],
        [first, "best", "cmp-2"],
    ]
    assert str(notes["created_at"].dt.tz) == "UTC"
    df = log.to_dataframe()
    assert df["annotations"].tolist() == [{"vote": "best"}, {"vote": "tie"}]


@pytest.mark.parametrize("args", [([], "vote"), ("", "vote"), ("abc", ""), ([None], "vote")])
def test_bad_annotations_are_refused(log, args):
    with pytest.raises(ValueError):
        log.annotate(*args)


def test_empty_log_gives_an_empty_typed_frame(log):
    df = log.to_dataframe()
    assert df.empty and list(df.columns) == [*COLUMNS, "annotations"]
    assert df["prompt_tokens"].dtype == "Int64"
    assert log.summary().empty


def test_records_and_last_filter_by_tags_too(log):
    make_calls()
    assert [r["model"] for r in log.records(tags="eval")] == ["demo/echo"]
    assert [r["model"] for r in log.last(5, tags={"user": "bob"})] == ["demo/fail"]
    with pytest.raises(TypeError, match="tags must be"):
        log.records(tags=[1])


def test_parquet_without_pyarrow_says_what_to_install(log, tmp_path, monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "pyarrow", None)  # as if not installed
    with pytest.raises(ImportError, match="pip install pyarrow"):
        log.export(tmp_path / "calls.parquet")
    assert not (tmp_path / "calls.parquet").exists()


def test_dataframes_without_pandas_say_what_to_install(tmp_path):
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['pandas'] = None\n"
        "import llmkit\n"
        "llmkit.completion(model='demo/echo', messages=[])\n"
        "try:\n    llmkit.calls.to_dataframe()\nexcept ImportError as e:\n    print(e)\n"
        "try:\n    llmkit.compare(['demo/echo'], ['x'])\nexcept ImportError as e:\n    print(e)\n"
        "print(len(llmkit.calls.records()))"
    )
    env = {**__import__("os").environ, "LLMKIT_LOG": "memory"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60).stdout
    lines = out.strip().splitlines()
    assert "pip install 'llmkit[dataframe]'" in lines[0] and "pip install 'llmkit[dataframe]'" in lines[1]
    assert lines[2] == "1"  # records() needs no pandas


def test_to_dataframe_pauses_the_garbage_collector_only_while_it_builds_the_frame(log, monkeypatch):
    """The read's columns are freed before the collector runs again; it is back on afterwards, and after
    a read that fails, and stays off for a caller who had turned it off."""
    import gc

    from llmkit.calllog import frame

    llmkit.completion(model="demo/echo", messages=USER)
    seen = []
    frame_of = frame.to_dataframe
    monkeypatch.setattr(frame, "to_dataframe", lambda *a: seen.append(gc.isenabled()) or frame_of(*a))
    assert len(log.to_dataframe()) == 1 and seen == [False] and gc.isenabled()

    def broken(*args, **kwargs):
        raise OSError("disk gone")

    monkeypatch.setattr(log._store(), "read", broken)
    with pytest.raises(OSError, match="disk gone"):
        log.to_dataframe()
    assert gc.isenabled()
    gc.disable()
    try:
        monkeypatch.undo()
        log.to_dataframe()
        assert not gc.isenabled()
    finally:
        gc.enable()
