"""CompareWidget(blind=True) through its traits and real buttons, and the Leaderboard's ratings and pass rates."""

import pytest

import llmkit
from llmkit import checks
from llmkit.widgets import CompareWidget, Leaderboard

MODELS = ["demo/echo", "demo/lorem", "demo/fail"]


def shown_text(w):
    """Everything the panes show, and the figures/results traits, as one string."""
    panes = " ".join(p.title.value + p.body.value + p.figures.value for p in w._panes)
    return panes + repr(w.results) + repr(w.figures)


def test_a_blind_comparison_names_no_model_until_the_vote(log):
    w = CompareWidget(MODELS, "Which is best?", blind=True, tokens_per_second=0)
    w.run()
    assert w.mapping is None
    assert [p.title.value for p in w._panes] == ["<b>A</b>", "<b>B</b>", "<b>C</b>"]
    assert sorted(w.results) == sorted(w.figures) == ["A", "B", "C"]
    text = shown_text(w)
    assert not any(name in text for name in (*MODELS, "echo", "lorem", "demo/"))
    assert "failed, as it always does" in text  # demo/fail's error shows, its name replaced by its letter
    with pytest.raises(ValueError, match="vote first"):
        w.to_dataframe()
    with pytest.raises(ValueError, match=r"vote by label \(A, B, C\)"):
        w.vote("best", "demo/echo")
    assert w.mapping is None

    record = w.vote("best", "B")
    assert sorted(w.mapping) == ["A", "B", "C"] and sorted(w.mapping.values()) == sorted(MODELS)
    assert record["model"] == w.mapping["B"] and record["mapping"] == w.mapping
    assert [p.title.value for p in w._panes] == [f"<b>{label} · {w.mapping[label]}</b>" for label in "ABC"]
    assert w.mapping["A"] in w._panes[0].figures.value  # the figures row names the model now
    frame = w.to_dataframe()
    assert frame.set_index("model")["vote"][w.mapping["B"]] == "best"
    stored = log.annotations()
    stored = stored[stored["name"] == "blind_mapping"]
    assert len(stored) == 3 and all(value == w.mapping for value in stored["value"])


def test_the_order_is_shuffled_per_comparison_and_a_button_votes_by_letter(log):
    w = CompareWidget(MODELS, "again", blind=True, tokens_per_second=0)
    orders = set()
    for _ in range(12):
        w.run()
        orders.add(tuple(run.model for run in w._runs))
        assert w.mapping is None  # each comparison starts hidden
    assert len(orders) > 1
    w._panes[2].best.click()
    assert w.votes[-1]["model"] == w.mapping["C"] == w._runs[2].model
    w._tie.click()
    assert w.votes[-1]["kind"] == "tie" and w.votes[-1]["mapping"] == w.mapping


def test_the_leaderboard_rates_blind_votes_and_shows_pass_rates(log):
    for _ in range(3):
        w = CompareWidget(["demo/echo", "demo/lorem"], "rate me", blind=True, tokens_per_second=0)
        w.run()
        w.vote("best", next(label for label, model in _reveal(w).items() if model == "demo/echo"))
    llmkit.compare(["demo/echo", "demo/lorem"], ["Paris"], checks=[checks.contains("Paris")], progress=False)
    board = Leaderboard()
    rows = {row["model"]: row for row in board.rows}
    assert [row["model"] for row in board.rows] == ["demo/echo", "demo/lorem"]  # highest rating first
    assert rows["demo/echo"]["rating"] > 1000 > rows["demo/lorem"]["rating"]
    assert rows["demo/echo"]["rating_low"] <= rows["demo/echo"]["rating"] <= rows["demo/echo"]["rating_high"]
    assert rows["demo/echo"]["comparisons"] == 3 and rows["demo/echo"]["wins"] == 3
    assert rows["demo/echo"]["pass_rate"] == 1.0 and rows["demo/lorem"]["pass_rate"] == 0.0
    assert rows["demo/lorem"]["pass_rate_high"] < 1.0 and "rating" in board._table.value
    board.close()


def _reveal(w):
    """The letters of a blind widget without voting: read from its runs, as a test may."""
    return {w._blinding.label(run.model): run.model for run in w._runs}
