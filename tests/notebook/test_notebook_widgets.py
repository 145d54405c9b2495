"""CompareWidget, driven through its traits and its real ipywidgets controls, with no browser."""

import asyncio
import time

import pytest
from notebook_support import SlowStream

import llmkit
from llmkit.notebook import aliases
from llmkit.widgets import CompareWidget


def wait_until(predicate, limit=10.0):
    deadline = time.monotonic() + limit
    while not predicate():
        assert time.monotonic() < deadline, "gave up waiting"
        time.sleep(0.01)


def test_run_streams_every_pane_and_fills_results_and_figures():
    w = CompareWidget(["demo/echo", "demo/lorem"], "compare me", tokens_per_second=0)
    results = w.run()
    assert results == w.results
    assert results["demo/echo"] == "compare me"
    assert len(results["demo/lorem"].split()) == 48
    for model in ("demo/echo", "demo/lorem"):
        figures = w.figures[model]
        assert figures["status"] == "done" and figures["error"] is None
        assert figures["latency_s"] > 0 and figures["ttft_s"] is not None and figures["tokens"] > 0
        assert figures["tokens_per_second"] > 0
    assert w.figures["demo/lorem"]["tokens"] == 48
    bodies = [pane.body.value for pane in w._panes]
    assert "compare me" in bodies[0] and "48 tokens" in w._panes[1].figures.value
    assert not w.running and not w._run_button.disabled and w._stop_button.disabled


def test_panes_stream_at_the_same_time():
    first, second = SlowStream(words=20, delay=0.02), SlowStream(words=20, delay=0.02)
    llmkit.custom_provider_map = [
        {"provider": "a", "custom_handler": first},
        {"provider": "b", "custom_handler": second},
    ]
    seen = []
    w = CompareWidget(["a/m", "b/m"], "go")
    w.observe(lambda change: seen.append(dict(change["new"])), "results")
    w.run()
    both_partial = [
        r for r in seen if 0 < len(r.get("a/m", "").split()) < 20 and 0 < len(r.get("b/m", "").split()) < 20
    ]
    assert both_partial, "both panes should have been part-way at the same moment"
    assert w.results == {"a/m": "".join(f"w{i} " for i in range(20)), "b/m": "".join(f"w{i} " for i in range(20))}


def test_controls_and_traits_are_one_state():
    w = CompareWidget(["demo/echo"], "hi", system="be kind", temperature=0.2, max_tokens=9)
    assert w._prompt_box.value == "hi" and w._system_box.value == "be kind"
    assert w._temperature.value == "0.2" and w._max_tokens.value == "9"
    w._prompt_box.value = "typed"
    w._picker.value = ["demo/echo", "demo/lorem"]
    w._temperature.value = "1.5"
    w._max_tokens.value = ""
    assert w.prompt == "typed" and w.models == ["demo/echo", "demo/lorem"]
    assert w.temperature == 1.5 and w.max_tokens is None
    w._max_tokens.value = "lots"
    assert w.max_tokens is None and w.status == "max_tokens must be a whole number, got 'lots'"
    assert "whole number" in w._message.value
    assert {"demo/echo", "demo/lorem"} <= set(w._picker.allowed_tags)


def test_the_picker_offers_aliases_and_listed_models():
    aliases.set_alias("fast", "demo/echo")
    w = CompareWidget()
    assert w._picker.allowed_tags[:3] == ["fast", "demo/echo", "demo/lorem"]
    assert w.models == ["fast", "demo/echo"]
    w.image_mode = True
    assert "demo/image" in w._picker.allowed_tags


def test_parameters_reach_the_handler_with_source_widget():
    handler = SlowStream(words=1, delay=0)
    llmkit.custom_provider_map = [{"provider": "s", "custom_handler": handler}]
    w = CompareWidget(["s/m"], "Q", system="S", temperature=0.1, max_tokens=5, top_p=0.5)
    w.run()
    call = handler.calls[0]
    assert call["messages"] == [{"role": "system", "content": "S"}, {"role": "user", "content": "Q"}]
    assert {k: call["optional_params"][k] for k in ("temperature", "max_tokens", "top_p")} == {
        "temperature": 0.1,
        "max_tokens": 5,
        "top_p": 0.5,
    }
    untouched = CompareWidget(["s/m"], "Q")
    untouched.run()
    assert "temperature" not in handler.calls[1]["optional_params"]


def test_stop_cancels_every_pane_and_keeps_what_arrived():
    first, second = SlowStream(words=1000, delay=0.01), SlowStream(words=1000, delay=0.01)
    llmkit.custom_provider_map = [
        {"provider": "a", "custom_handler": first},
        {"provider": "b", "custom_handler": second},
    ]
    w = CompareWidget(["a/m", "b/m"], "go")
    w._run_button.click()
    wait_until(lambda: w.running and all(w.results.get(m) for m in ("a/m", "b/m")))
    assert not w._stop_button.disabled
    w._stop_button.click()
    wait_until(lambda: not w.running)
    assert first.closed and second.closed
    assert {w.figures[m]["status"] for m in ("a/m", "b/m")} == {"cancelled"}
    assert w.results["a/m"].startswith("w0 ") and len(w.results["a/m"].split()) < 1000


def test_a_failing_model_shows_its_error_and_the_others_finish():
    w = CompareWidget(["demo/fail", "demo/echo"], "still here")
    w.run()
    assert w.figures["demo/fail"]["status"] == "error"
    assert "demo/fail failed" in w.figures["demo/fail"]["error"]
    assert "InternalServerError" in w._panes[0].body.value
    assert w.results["demo/echo"] == "still here"


def test_an_unknown_provider_is_reported_before_anything_runs():
    w = CompareWidget(["nowhere/x"], "hi")
    with pytest.raises(llmkit.BadRequestError, match="unknown provider 'nowhere'"):
        w.run()
    assert "unknown provider 'nowhere'" in w.status and "unknown provider" in w._message.value
    w._run_button.click()  # a button cannot raise: the message shows in the widget instead
    assert not w.running


def test_votes_are_state_and_reach_callbacks():
    w = CompareWidget(["demo/echo", "demo/lorem"], "which?", tokens_per_second=0)
    heard = []
    w.on_vote(lambda vote: 1 / 0)  # a broken callback does not stop the others or the vote
    w.on_vote(heard.append)
    with pytest.raises(ValueError, match="run a comparison first"):
        w.vote("tie")
    w.run()
    w._panes[1].best.click()
    assert w.votes[-1]["kind"] == "best" and w.votes[-1]["model"] == "demo/lorem"
    assert w.votes[-1]["models"] == ["demo/echo", "demo/lorem"] and w.votes[-1]["prompt"] == "which?"
    w._tie.click()
    w._all_bad.click()
    assert [v["kind"] for v in w.votes] == ["best", "tie", "all_bad"] and heard == list(w.votes)
    with pytest.raises(ValueError, match="names its model"):
        w.vote("best")
    with pytest.raises(ValueError, match="not in the last comparison"):
        w.vote("best", "demo/other")


def test_to_dataframe_has_this_comparisons_rows_from_the_log_with_the_vote(log):
    w = CompareWidget(["demo/fail", "demo/echo"], "first")
    w.run()
    w.prompt = "rows"
    w.run()
    w.vote("best", "demo/echo")
    frame = w.to_dataframe()
    assert list(frame["model"]) == ["demo/fail", "demo/echo"]  # the widget's order, this comparison only
    assert list(frame["status"]) == ["error", "ok"] and list(frame["prompt"]) == ["rows", "rows"]
    assert frame.loc[1, "response"] == "rows" and frame.loc[0, "error_type"] == "InternalServerError"
    assert list(frame["vote"]) == ["not_best", "best"]
    assert set(frame["run_id"]) == {w.comparison_id}
    assert set(llmkit.calllog.COLUMNS) <= set(frame.columns)


def test_a_vote_is_written_to_the_log_in_one_write(log):
    """Every label of a vote (best, each not_best, a blind comparison's mapping) goes in one write: a
    reader (a leaderboard in another process) never sees half a vote. One write stamps one time."""
    w = CompareWidget(["demo/echo", "demo/lorem", "demo/fail"], "one write", blind=True, tokens_per_second=0)
    w.run()
    w.vote("best", "B")
    rows = log.annotations()
    votes, blind = rows[rows["name"] == "vote"], rows[rows["name"] != "vote"]
    assert sorted(votes["value"]) == ["best", "not_best", "not_best"] and len(blind) == 3
    assert rows["created_at"].nunique() == 1 and rows["group_id"].nunique() == 1


def test_image_mode_shows_images_in_the_panes():
    w = CompareWidget(["demo/image"], "a blue disc", image_mode=True, n=2)
    w.run()
    assert w._panes[0].body.value.count("<img") == 2
    assert w.figures["demo/image"]["status"] == "done"


def test_arun_inside_a_running_loop():
    w = CompareWidget(["demo/echo"], "async")

    async def main():
        return await w.arun()

    assert asyncio.run(main()) == {"demo/echo": "async"}


def test_every_call_goes_through_the_public_dispatcher_with_source_widget(monkeypatch):
    seen = []
    for name in ("acompletion", "aimage_generation"):
        original = getattr(llmkit, name)

        async def spy(*args, _original=original, _name=name, **kwargs):
            seen.append((_name, kwargs.get("source")))
            return await _original(*args, **kwargs)

        monkeypatch.setattr(llmkit, name, spy)
    CompareWidget(["demo/echo", "demo/image"], "both kinds").run()
    assert sorted(seen) == [("acompletion", "widget"), ("aimage_generation", "widget")]
