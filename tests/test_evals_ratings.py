"""Ratings per model (Bradley–Terry with a bootstrap interval) from votes and pairwise verdicts in the log."""

import pandas as pd
import pytest
from evals_support import Fixed, KeywordJudge, register

import llmkit
from llmkit import checks
from llmkit.evals.ratings import bradley_terry, outcomes_from_log, ratings_table


def test_the_model_that_wins_more_rates_higher_with_an_interval_around_it():
    outcomes = [("a", "b", 1.0)] * 8 + [("a", "b", 0.0)] * 2 + [("b", "c", 1.0)] * 6 + [("b", "c", 0.5)] * 4
    table = bradley_terry(outcomes)
    assert list(table.sort_values("rating", ascending=False).index) == ["a", "b", "c"]
    assert ((table["rating_low"] <= table["rating"]) & (table["rating"] <= table["rating_high"])).all()
    assert (table["rating_high"] > table["rating_low"]).all()
    assert table["comparisons"].to_dict() == {"a": 10, "b": 20, "c": 10}
    pd.testing.assert_frame_equal(table, bradley_terry(outcomes))  # a fixed seed: the same table every time
    assert not bradley_terry(outcomes, seed=1)["rating_low"].equals(table["rating_low"])


def test_equal_records_rate_equally_and_an_unbeaten_model_stays_finite():
    even = bradley_terry([("a", "b", 1.0), ("a", "b", 0.0), ("a", "b", 0.5)])
    assert even.loc["a", "rating"] == pytest.approx(even.loc["b", "rating"])
    unbeaten = bradley_terry([("a", "b", 1.0)] * 50)
    assert 1000 < unbeaten.loc["a", "rating"] < 3000 and unbeaten.loc["b", "rating"] < 1000
    assert bradley_terry([]).empty


def test_outcomes_come_from_widget_votes_and_judge_verdicts(log):
    from llmkit.widgets import CompareWidget

    w = CompareWidget(["demo/echo", "demo/lorem", "demo/fail"], "hi", tokens_per_second=0)
    w.run()
    w.vote("tie")
    w.vote("best", "demo/lorem")  # the latest vote on a comparison counts
    register(m=Fixed({"a": "Paris", "b": "Lyon"}), grader=KeywordJudge())
    llmkit.compare(["m/a", "m/b"], ["q"], checks=[checks.pairwise_judge("grader/j")], progress=False)
    outcomes = outcomes_from_log(log.to_dataframe(), log.annotations())
    assert sorted(outcomes) == sorted(
        [("demo/lorem", "demo/echo", 1.0), ("demo/lorem", "demo/fail", 1.0), ("m/a", "m/b", 1.0)]
    )
    table = ratings_table(log.to_dataframe(), log.annotations())
    assert table.loc["demo/lorem", "rating"] > table.loc["demo/echo", "rating"]
    assert table.loc["m/a", "rating"] > table.loc["m/b", "rating"]


def test_a_tie_or_all_bad_vote_ties_every_pair(log):
    from llmkit.widgets import CompareWidget

    w = CompareWidget(["demo/echo", "demo/lorem", "demo/fail"], "hi", tokens_per_second=0)
    w.run()
    w.vote("all_bad")
    outcomes = outcomes_from_log(log.to_dataframe(), log.annotations())
    assert sorted(outcomes) == [
        ("demo/echo", "demo/fail", 0.5), ("demo/echo", "demo/lorem", 0.5), ("demo/fail", "demo/lorem", 0.5)
    ]  # fmt: skip
