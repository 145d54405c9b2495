"""What the log keeps and writes out: each prompt once, strict JSON everywhere, old files still read."""

import json
import math
import sqlite3

import pandas as pd
import pytest

import llmkit
from llmkit.calllog.sqlite import SQLiteStore
from llmkit.calllog.store import Filters


def strict(line):
    def refuse(constant):
        raise ValueError(f"{constant} is not JSON")

    return json.loads(line, parse_constant=refuse)


def test_a_chats_prompt_is_stored_once_and_read_back(log, tmp_path):
    long_prompt = "tell me about otters " * 5000  # 100 KB
    llmkit.completion(model="demo/echo", messages=[{"role": "system", "content": "be brief"},
                                                  {"role": "user", "content": long_prompt}])  # fmt: skip
    llmkit.image_generation("an otter", model="demo/image")
    log.flush()
    db = sqlite3.connect(tmp_path / "calls.db")
    stored = db.execute("SELECT kind, prompt, length(messages) FROM calls ORDER BY seq").fetchall()
    assert stored[0][0] == "chat" and stored[0][1] is None and stored[0][2] > len(long_prompt)
    assert stored[1] == ("image", "an otter", None)  # no messages to derive it from: kept
    chat, image = log.records()
    assert chat["prompt"] == long_prompt and image["prompt"] == "an otter"
    assert log.to_dataframe()["prompt"].tolist() == [long_prompt, "an otter"]
    assert log.last(1, kind="chat")[0]["prompt"] == long_prompt


def test_callbacks_and_captures_see_the_prompt(log):
    seen = []
    log.on_success(lambda record: seen.append(record["prompt"]))
    with log.capture() as run:
        llmkit.completion(model="demo/echo", messages=[{"role": "user", "content": "captured"}])
    log.flush()
    assert seen == ["captured"] and run.records[0]["prompt"] == "captured"


def test_rows_written_with_both_columns_still_read(tmp_path):
    """A log written before prompts were derived keeps a copy in both columns; the stored one is read."""
    store = SQLiteStore(tmp_path / "calls.db")
    store.close()
    db = sqlite3.connect(tmp_path / "calls.db")
    db.execute(
        "INSERT INTO calls (call_id, started_at, model, kind, messages, prompt, status) VALUES (?, ?, ?, ?, ?, ?, ?)",
        ("a" * 32, 1.0, "demo/echo", "chat", json.dumps([{"role": "user", "content": "hi"}]), "hi", "ok"),
    )
    db.commit()
    store = SQLiteStore(tmp_path / "calls.db")
    assert store.read(Filters())["prompt"] == ["hi"]
    store.close()


def test_jsonl_export_is_strict_json(log, tmp_path):
    llmkit.register_model_cost("demo/echo", input_cost_per_token=1e308, output_cost_per_token=1e308)  # cost: inf
    llmkit.completion(
        model="demo/echo", messages=[{"role": "user", "content": "hi"}], temperature=float("nan"),
        logit_bias={"50256": float("-inf")}, metadata={"score": float("nan"), "tags": ["x"]},
    )  # fmt: skip
    lines = log.export(tmp_path / "calls.jsonl").read_text().splitlines()
    (record,) = [strict(line) for line in lines]
    assert record["cost_usd"] is None  # infinite: JSON has no such number
    assert record["params"] == {"temperature": None, "logit_bias": {"50256": None}}
    assert record["metadata"] == {"score": None, "tags": ["x"]}
    back = log.read_export(tmp_path / "calls.jsonl")
    assert back["metadata"][0] == {"score": None, "tags": ["x"]}


def test_the_database_holds_strict_json(log, tmp_path):
    llmkit.completion(model="demo/echo", messages=[{"role": "user", "content": "hi"}], top_p=float("inf"))
    log.flush()
    db = sqlite3.connect(tmp_path / "calls.db")
    (params,) = db.execute("SELECT params FROM calls").fetchone()
    assert strict(params) == {"top_p": None}
    assert db.execute("SELECT json_valid(params) FROM calls").fetchone() == (1,)


def test_csv_and_parquet_exports_round_trip_numbers_json_cannot_hold(log, tmp_path):
    llmkit.completion(model="demo/echo", messages=[{"role": "user", "content": "hi"}], metadata={"w": 1.5})
    for suffix in (".csv", ".parquet"):
        back = log.read_export(log.export(tmp_path / f"calls{suffix}"))
        pd.testing.assert_frame_equal(back, log.to_dataframe(), check_categorical=False, check_dtype=False)
    assert not math.isnan(log.to_dataframe()["latency_ms"][0])


@pytest.mark.parametrize("last", [None, 2])
def test_reads_decode_identical_json_once(log, last):
    messages = [{"role": "user", "content": "same question"}]
    for _ in range(3):
        llmkit.completion(model="demo/echo", messages=messages, temperature=0)
    columns = log._store().read(Filters(), last=last)
    assert columns["messages"][-1] is columns["messages"][-2]  # one object, shared
    assert columns["params"][-1] is columns["params"][-2]


def test_a_value_sqlite_cannot_hold_is_stored_as_json_not_refused(tmp_path):
    store = SQLiteStore(tmp_path / "calls.db")
    odd = {"call_id": "a" * 32, "started_at": 1.0, "model": "m/x", "status": "ok",
           "response": [{"type": "text", "text": "in parts"}], "prompt_tokens": 2**70}  # fmt: skip
    store.write([odd, {"call_id": "b" * 32, "started_at": 2.0, "model": "m/y", "status": "ok"}])
    columns = store.read(Filters())
    assert columns["model"] == ["m/x", "m/y"]  # the whole batch, not refused for one odd row
    assert json.loads(columns["response"][0]) == [{"type": "text", "text": "in parts"}]
    store.close()
