"""compare(samples=, checks=): repeated samples, check columns, annotations, judges, and the summary."""

import math

import pytest
from evals_support import Fixed, KeywordJudge, register

import llmkit
from llmkit import checks
from llmkit.evals.stats import wilson

TEXTS = {"good": "Paris is the capital.", "bad": "Lyon, I think."}


def test_samples_ask_each_prompt_and_model_k_times_with_a_sample_column(log):
    handler = Fixed(TEXTS)
    register(m=handler)
    df = llmkit.compare(["m/good", "m/bad"], ["q1", "q2"], samples=3, progress=False)
    assert len(df) == len(handler.calls) == 12
    assert df[["prompt_index", "model", "sample"]].values.tolist() == [
        [p, m, s] for p in (0, 1) for m in ("m/good", "m/bad") for s in range(3)
    ]
    assert df["sample"].dtype == "int64"
    assert all("sample" not in call["optional_params"] for call in handler.calls)  # a control parameter
    wide = llmkit.side_by_side(df)
    assert list(wide.index.names) == ["prompt_index", "sample"] and len(wide) == 6


@pytest.mark.parametrize("samples", [0, -1, 1.5, True])
def test_samples_below_one_is_a_clear_error(samples):
    with pytest.raises(ValueError, match="samples must be a whole number >= 1"):
        llmkit.compare(["demo/echo"], ["x"], samples=samples, progress=False)


def test_checks_add_score_columns_and_passed_and_annotate_each_call(log):
    register(m=Fixed(TEXTS))
    df = llmkit.compare(
        ["m/good", "m/bad"],
        ["Capital of France?"],
        checks=[checks.contains("Paris"), checks.max_tokens(50), lambda text: len(text) > 15],
        progress=False,
    )
    assert list(df.columns[-4:]) == ["check_contains_paris", "check_max_tokens", "check_lambda", "passed"]
    assert df["check_contains_paris"].tolist() == [1.0, 0.0]
    assert df["passed"].tolist() == [True, False] and df["passed"].dtype == "boolean"
    annotations = log.annotations()  # one per call, holding every check's result
    assert len(annotations) == 2 and set(annotations["source"]) == {"check"} and set(annotations["name"]) == {"checks"}
    mine = annotations.set_index("call_id")["value"][df["call_id"][1]]
    assert set(mine) == {"contains_paris", "max_tokens", "lambda"}
    assert mine["contains_paris"] == {"passed": False, "score": 0.0, "reason": "did not find 'Paris'"}
    assert set(annotations["group_id"]) == {df["run_id"][0]}
    logged = log.to_dataframe(run_id=df["run_id"][0]).set_index("call_id")["annotations"]
    assert logged[df["call_id"][0]]["checks"]["lambda"]["passed"] is True  # joins back to the call


def test_a_check_that_raises_is_a_failed_check_and_the_row_stays(log):
    register(m=Fixed(TEXTS))

    def broken(text):
        raise KeyError("nope")

    df = llmkit.compare(["m/good"], ["q"], checks=[broken, checks.contains("Paris")], progress=False)
    assert len(df) == 1 and df["response"][0] == TEXTS["good"]
    assert math.isnan(df["check_broken"][0]) and df["passed"].tolist() == [False]
    value = log.annotations().set_index("name")["value"]["checks"]["broken"]
    assert value["passed"] is False and "raised KeyError" in value["reason"]


def test_a_failed_call_fails_its_checks_with_the_error(log):
    df = llmkit.compare(["demo/fail"], ["q"], checks=[checks.contains("x")], progress=False)
    assert df["passed"].tolist() == [False]
    assert "no answer: InternalServerError" in log.annotations()["value"][0]["contains_x"]["reason"]


def test_duplicate_check_names_and_unknown_judges_are_refused_before_any_call(log):
    handler = Fixed(TEXTS)
    register(m=handler)
    with pytest.raises(ValueError, match="two checks are named 'contains_paris'"):
        llmkit.compare(["m/good"], ["q"], checks=[checks.contains("Paris"), checks.contains("Paris")], progress=False)
    with pytest.raises(llmkit.BadRequestError, match="unknown provider 'nojudge'"):
        llmkit.compare(["m/good"], ["q"], checks=[checks.judge("nojudge/x", "be right")], progress=False)
    with pytest.raises(llmkit.BadRequestError, match="unknown provider 'nojudge'"):
        llmkit.compare(["m/good"], ["q"], checks=[checks.pairwise_judge("nojudge/x")], progress=False)
    assert handler.calls == [] and len(log) == 0


def test_judge_checks_run_while_other_calls_are_still_in_flight(log):
    answers, judge = Fixed({"a": "Paris", "b": "Lyon"}, delay=0.05), KeywordJudge()
    register(m=answers, grader=judge)
    df = llmkit.compare(
        ["m/a", "m/b"], [f"q{i}" for i in range(4)], checks=[checks.judge("grader/j", "Says Paris")],
        concurrency=1, progress=False,
    )  # fmt: skip
    assert min(judge.started) < max(answers.finished)  # the first grade came before the last answer
    assert df["check_judge"].tolist() == [0.9, 0.2] * 4 and df["passed"].tolist() == [True, False] * 4
    logged = log.to_dataframe(run_id=df["run_id"][0])
    assert (logged["source"] == "judge").sum() == 8 and (logged["source"] == "batch").sum() == 8


def test_a_pairwise_judge_in_compare_scores_each_answer_against_the_others(log):
    register(m=Fixed({"a": "Paris", "b": "Lyon", "c": "Paris!"}), grader=KeywordJudge())
    df = llmkit.compare(
        ["m/a", "m/b", "m/c"], ["q"], samples=2, checks=[checks.pairwise_judge("grader/j"), checks.contains("P")],
        progress=False,
    )  # fmt: skip
    # a and c each beat b and tie each other: 0.75; b loses both: 0.0
    assert df.groupby("model")["check_pairwise"].mean().to_dict() == {"m/a": 0.75, "m/b": 0.0, "m/c": 0.75}
    assert df["passed"].tolist() == [True, True, False, False, True, True]  # from contains only
    verdicts = log.annotations()
    verdicts = verdicts[verdicts["name"] == "pairwise"]
    assert len(verdicts) == 2 * 3 * 2  # 3 pairs per sample, 2 samples, one annotation per side
    assert verdicts["group_id"].value_counts().eq(2).all()
    judge_calls = log.to_dataframe(source="judge")
    assert len(judge_calls) == 12  # 6 verdicts, each asked in both orders


def test_summary_has_pass_rates_with_a_wilson_interval_and_spread_across_samples(log):
    register(m=Fixed(TEXTS))
    prompts = [f"q{i}" for i in range(5)]
    df = llmkit.compare(["m/good", "m/bad"], prompts, samples=3, checks=[checks.contains("Paris")], progress=False)
    table = log.summary(run_id=df["run_id"][0])
    assert table.loc["m/good", "checked"] == 15 and table.loc["m/good", "pass_rate"] == 1.0
    assert table.loc["m/bad", "pass_rate"] == 0.0
    assert (table.loc["m/good", "pass_rate_low"], table.loc["m/good", "pass_rate_high"]) == pytest.approx(
        wilson(15, 15)
    )
    assert table.loc["m/good", "samples"] == 3
    per_sample = df[df["model"] == "m/good"].groupby("sample")["latency_ms"].mean()
    assert table.loc["m/good", "latency_sd_ms"] == pytest.approx(per_sample.std())
    assert table.loc["m/good", "latency_mean_ms"] == pytest.approx(df[df["model"] == "m/good"]["latency_ms"].mean())
    assert table.loc["m/good", "pass_rate_sd"] == 0.0


def test_summary_without_checks_or_samples_keeps_its_columns(log):
    llmkit.compare(["demo/echo"], ["x"], progress=False)
    assert "pass_rate" not in log.summary().columns and "samples" not in log.summary().columns


def test_wilson_interval_matches_the_formula():
    assert wilson(8, 10) == pytest.approx((0.4902, 0.9433), abs=1e-4)
    assert wilson(0, 10)[0] == 0.0 and wilson(10, 10)[1] == 1.0
    assert all(math.isnan(x) for x in wilson(0, 0))


def test_checks_work_with_the_log_off():
    from llmkit.calllog import configure_log

    configure_log("off")
    try:
        df = llmkit.compare(["demo/echo"], ["Paris"], checks=[checks.contains("Paris")], samples=2, progress=False)
        assert df["passed"].tolist() == [True, True]
    finally:
        configure_log()
