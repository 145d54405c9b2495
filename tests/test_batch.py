"""llmkit.compare: every prompt x every model, concurrently, failures as rows, Ctrl-C keeps rows."""

import asyncio
import os
import signal
import threading

import pandas as pd
import pytest

import llmkit


class Counting(llmkit.CustomLLM):
    """Async chat that records how many calls are in flight, overall and per model."""

    def __init__(self, delay=0.02):
        self.delay = delay
        self.now: dict = {}
        self.peak: dict = {}
        self.total_peak = 0
        self.messages = []

    async def acompletion(self, model, messages, **kwargs):
        self.messages.append(messages)
        self.now[model] = self.now.get(model, 0) + 1
        self.peak[model] = max(self.peak.get(model, 0), self.now[model])
        self.total_peak = max(self.total_peak, sum(self.now.values()))
        await asyncio.sleep(self.delay)
        self.now[model] -= 1
        return llmkit.ModelResponse(
            model=model, choices=[{"message": {"content": f"{model}: {messages[-1]['content']}"}}]
        )


def use(handler):
    llmkit.custom_provider_map = [{"provider": "count", "custom_handler": handler}]


def test_every_prompt_against_every_model_with_failures_as_rows(log):
    df = llmkit.compare(["demo/echo", "demo/fail"], ["hi", "there", "you"], progress=False, status_code=503)
    assert len(df) == 6
    assert df[["prompt_index", "model"]].values.tolist() == [
        [i, m] for i in range(3) for m in ("demo/echo", "demo/fail")
    ]
    echo = df[df["model"] == "demo/echo"]
    assert echo["response"].tolist() == ["hi", "there", "you"]
    assert (echo["status"] == "ok").all() and echo["error"].isna().all()
    assert echo["ttft_ms"].notna().all() and echo["latency_ms"].notna().all()
    fail = df[df["model"] == "demo/fail"]
    assert (fail["status"] == "error").all()
    assert fail["error"].str.contains("ServiceUnavailableError").all()
    assert df["prompt_tokens"].dtype == "Int64"
    # the same calls in the log: source batch, one run id
    logged = log.to_dataframe(run_id=df["run_id"][0])
    assert len(logged) == 6 and set(logged["source"]) == {"batch"}
    assert set(logged["call_id"]) == set(df["call_id"])
    assert df["run_id"].nunique() == 1


def test_prompts_from_a_series_keep_their_index_and_system_is_sent(log):
    handler = Counting(delay=0)
    use(handler)
    prompts = pd.Series(["a", "b"], index=["q1", "q2"])
    df = llmkit.compare("count/m", prompts, system="be brief", progress=False)
    assert df["prompt_index"].tolist() == ["q1", "q2"]
    assert df["prompt"].tolist() == ["a", "b"]
    assert all(messages[0] == {"role": "system", "content": "be brief"} for messages in handler.messages)


def test_concurrency_limits_overall_and_per_model(log):
    handler = Counting(delay=0.02)
    use(handler)
    models = ["count/a", "count/b", "count/c"]
    llmkit.compare(models, [str(i) for i in range(12)], concurrency=5, per_model_concurrency=2, progress=False)
    assert handler.total_peak <= 5 and max(handler.peak.values()) == 2
    handler = Counting(delay=0.02)
    use(handler)
    llmkit.compare(models, [str(i) for i in range(12)], concurrency=4, progress=False)
    assert handler.total_peak == 4


def test_side_by_side_puts_models_across(log):
    df = llmkit.compare(["demo/echo", "demo/fail"], ["x", "y"], progress=False)
    wide = llmkit.side_by_side(df)
    assert list(wide.columns) == ["prompt", "demo/echo", "demo/fail"]
    assert wide["demo/echo"].tolist() == ["x", "y"]
    assert list(llmkit.side_by_side(df, "status").columns) == ["prompt", "demo/echo", "demo/fail"]
    with pytest.raises(ValueError, match="compare\\(\\)'s columns"):
        llmkit.side_by_side(df, "colour")


def test_keyboard_interrupt_returns_the_rows_finished_so_far(log):
    class Interrupting(llmkit.CustomLLM):
        calls = 0

        async def acompletion(self, model, messages, **kwargs):
            type(self).calls += 1
            if type(self).calls == 4:  # the user presses Ctrl-C while the 4th call runs
                threading.Timer(0.01, os.kill, (os.getpid(), signal.SIGINT)).start()
            await asyncio.sleep(2.0 if type(self).calls >= 4 else 0)  # interrupted long before
            return llmkit.ModelResponse(model=model, choices=[{"message": {"content": "done"}}])

    llmkit.custom_provider_map = [{"provider": "intr", "custom_handler": Interrupting()}]
    df = llmkit.compare("intr/m", [str(i) for i in range(10)], concurrency=1, progress=False)
    assert df["prompt_index"].tolist() == [0, 1, 2]
    assert (df["status"] == "ok").all()
    statuses = log.to_dataframe(run_id=df["run_id"][0])["status"].tolist()
    assert statuses == ["ok", "ok", "ok", "cancelled"]


def test_compare_works_with_the_log_off():
    from llmkit.calllog import configure_log

    configure_log("off")
    try:
        df = llmkit.compare(["demo/echo"], ["hello"], progress=False)
        assert df["response"].tolist() == ["hello"] and df["call_id"].notna().all()
        assert len(llmkit.calls) == 0
    finally:
        configure_log()


def test_progress_bar_counts_every_call(log, capsys):
    llmkit.compare(["demo/echo", "demo/fail"], ["a", "b"])
    assert "4/4" in capsys.readouterr().err


@pytest.mark.parametrize(
    "models, prompts, kwargs, error",
    [
        ([], ["x"], {}, ValueError),
        (["demo/echo", "demo/echo"], ["x"], {}, ValueError),
        (["demo/echo"], "x", {}, TypeError),
        (["demo/echo"], [3], {}, TypeError),
        (["demo/echo"], ["x"], {"concurrency": 0}, ValueError),
        (["demo/echo"], ["x"], {"per_model_concurrency": 1.5}, ValueError),
    ],
)
def test_bad_inputs_are_refused(models, prompts, kwargs, error):
    with pytest.raises(error):
        llmkit.compare(models, prompts, progress=False, **kwargs)


def test_compare_inside_a_running_event_loop_as_in_a_notebook_cell(log):
    async def cell():
        return llmkit.compare(["demo/echo", "demo/lorem"], ["hi"], progress=False, tokens_per_second=0)

    df = asyncio.run(cell())
    assert df["status"].tolist() == ["ok", "ok"] and df["response"][0] == "hi"


class LongStream(llmkit.CustomLLM):
    """Streams 60 chunks; counts the chunk objects alive in the process before the first and the last."""

    def __init__(self):
        self.alive = []

    async def astreaming(self, model, messages, **kwargs):
        import gc

        from llmkit.types.utils import ModelResponseStream

        def alive():  # earlier tests may have left some behind: only the change counts
            return sum(isinstance(o, ModelResponseStream) for o in gc.get_objects())

        self.alive.append(alive())
        for i in range(60):
            yield {"text": f"w{i} ", "is_finished": False, "finish_reason": None, "usage": None}
        self.alive.append(alive())
        yield {"text": "", "is_finished": True, "finish_reason": "stop", "usage": None}


def test_compare_lets_each_chunk_go_once_read(log):
    """compare() takes its rows from the call log, so its streams keep no chunks for a replay:
    kept, each would outlive many young-generation collections (10% more CPU per call at concurrency 32)."""
    handler = LongStream()
    llmkit.custom_provider_map = [{"provider": "long", "custom_handler": handler}]
    df = llmkit.compare(["long/m"], ["hi"], progress=False)
    assert df["response"].iloc[0].startswith("w0 w1 ") and df["response"].iloc[0].count("w") == 60
    before, at_end = handler.alive
    assert at_end - before < 5  # not the 59 delivered before the last
