"""llmkit.checks on their own: deterministic checks, plain functions, and judges backed by real handlers."""

import pytest
from evals_support import FirstPositionJudge, KeywordJudge, register
from pydantic import BaseModel

import llmkit
from llmkit import checks


def test_text_checks_pass_and_fail_with_reasons():
    assert checks.contains("Paris")("The capital is Paris.").passed
    missed = checks.contains("Paris")("the capital is paris")
    assert (missed.passed, missed.score) == (False, 0.0) and "did not find 'Paris'" in missed.reason
    assert checks.icontains("PARIS")("the capital is paris").passed
    assert checks.regex(r"\b\d{4}\b")("founded in 1889, they say").reason == "matched '1889'"
    assert not checks.regex(r"^\d+$")("12a").passed
    assert checks.equals("42")("  42\n").passed and not checks.equals("42", strip=False)(" 42").passed
    assert checks.equals("Yes", ignore_case=True)("yes").passed


def test_json_checks_read_fenced_answers_and_explain_what_is_wrong():
    assert checks.is_json()('```json\n{"a": 1}\n```').passed
    assert "not JSON" in checks.is_json()("sure! {a: 1}").reason

    class City(BaseModel):
        name: str
        population: int

    by_model = checks.json_schema(City)
    assert by_model('{"name": "Paris", "population": 2100000}').passed
    bad = by_model('{"name": "Paris", "population": "many"}')
    assert not bad.passed and bad.reason.startswith("population:")
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    assert checks.json_schema(schema)('{"n": 3}').passed
    assert "'n' is a required property" in checks.json_schema(schema)("{}").reason
    with pytest.raises(ValueError, match="schema itself is invalid"):
        checks.json_schema({"type": "nonsense"})
    with pytest.raises(TypeError, match="JSON Schema dict or a pydantic model"):
        checks.json_schema("object")


def test_figure_checks_read_a_rows_latency_and_tokens():
    row = {"response": "hello", "latency_ms": 250.0, "completion_tokens": 12, "status": "ok"}
    assert not checks.max_latency_ms(200)(row).passed and checks.max_latency_ms(300)(row).passed
    assert checks.max_tokens(12)(row).passed and not checks.max_tokens(11)(row).passed
    assert "no latency known" in checks.max_latency_ms(10)("just text").reason
    assert checks.max_tokens(100)("a short answer").passed  # counted from the text
    with pytest.raises(ValueError, match="above 0"):
        checks.max_latency_ms(0)


def test_a_check_takes_a_dataframe_row_and_a_model_response(log):
    df = llmkit.compare(["demo/echo"], ["Paris in spring"], progress=False)
    assert checks.contains("Paris")(df.iloc[0]).passed
    assert checks.max_latency_ms(60_000)(df.iloc[0]).passed
    response = llmkit.completion("demo/echo", [{"role": "user", "content": "Paris"}])
    assert checks.contains("Paris")(response).passed


def test_plain_functions_become_checks():
    assert checks.as_check(lambda text: "x" in text)("xyz") == checks.CheckResult(True, 1.0, "")
    assert checks.as_check(lambda text: len(text) / 10)("abc") == checks.CheckResult(False, 0.3, "")
    assert checks.as_check(lambda text: (0.8, "nearly"), pass_at=0.7)("a") == checks.CheckResult(True, 0.8, "nearly")

    def short(row):  # a parameter named row gets the whole answer, figures included
        return row.latency_ms < 100, f"{row.latency_ms} ms"

    assert checks.as_check(short).name == "short"
    assert checks.as_check(short)({"response": "a", "latency_ms": 20.0}).reason == "20.0 ms"
    with pytest.raises(TypeError, match="returns a bool, a number"):
        checks.as_check(lambda text: "yes")("a")


def test_judge_grades_with_a_real_handler_and_logs_its_call_as_source_judge(log):
    judge_handler = KeywordJudge()
    register(grader=judge_handler)
    judge = checks.judge("grader/strict", "Names the capital of France.")
    good = judge({"prompt": "Capital of France?", "response": "Paris.", "status": "ok"})
    assert good == checks.CheckResult(True, 0.9, "grade 9")
    assert not judge("Lyon.").passed
    assert "[Rubric]\nNames the capital of France." in judge_handler.prompts[0]
    assert "[Question]\nCapital of France?" in judge_handler.prompts[0]
    logged = log.to_dataframe()
    assert list(logged["source"]) == ["judge", "judge"] and set(logged["model"]) == {"grader/strict"}


@pytest.mark.parametrize(
    "reply, passed, score",
    [
        ('Here you go: {"score": 7, "reason": "fine"} hope it helps', True, 0.7),
        ('```json\n{"grade": "3", "rationale": "weak"}\n```', False, 0.3),
        ("Score: 8/10 because it is right", True, 0.8),
    ],
)
def test_judge_replies_are_read_leniently(reply, passed, score):
    register(grader=KeywordJudge(reply=reply))
    result = checks.judge("grader/x", "anything")("an answer")
    assert (result.passed, result.score) == (passed, score)


@pytest.mark.parametrize("reply", ["I'd rather not say.", '{"score": "high"}', '{"score": 42}'])
def test_a_malformed_judge_reply_is_a_failed_check_with_the_raw_reply(reply):
    register(grader=KeywordJudge(reply=reply))
    result = checks.judge("grader/x", "anything")("an answer")
    assert result.passed is False and result.score is None
    assert "unreadable judge reply" in result.reason and reply in result.reason


def test_a_judge_whose_call_fails_is_a_failed_check():
    result = checks.judge("demo/fail", "anything")("an answer")
    assert not result.passed and "the judge's call failed: InternalServerError" in result.reason


def test_pairwise_judge_asks_both_orders_and_says_which_is_better():
    handler = KeywordJudge()
    register(grader=handler)
    pj = checks.pairwise_judge("grader/x", "Names the capital.")
    verdict = pj("Capital of France?", "It is Lyon.", "It is Paris.")
    assert verdict.winner == "B" and verdict.score == -1.0 and "mentions Paris" in verdict.rationale
    assert [r["is_flipped"] for r in verdict.ratings] == [False, True]
    assert [r["rating_label"] for r in verdict.ratings] == ["B", "A"]  # as the judge saw them
    assert [r["score"] for r in verdict.ratings] == [-1.0, -1.0]  # both in A's favour terms
    assert len(handler.prompts) == 2 and "Names the capital." in handler.prompts[0]
    assert pj("q", "Paris", "Paris").winner == "tie"


def test_a_judge_with_a_position_bias_is_cancelled_out():
    register(biased=FirstPositionJudge())
    verdict = checks.pairwise_judge("biased/x")("q", "one", "two")
    assert verdict.winner == "tie" and verdict.score == 0.0


def test_an_unreadable_pairwise_reply_is_no_verdict_not_an_exception():
    register(grader=KeywordJudge(reply="both are lovely"))
    verdict = checks.pairwise_judge("grader/x")("q", "a", "b")
    assert verdict.winner is None and verdict.score is None and "both are lovely" in verdict.rationale


def test_judges_need_a_model_string_and_a_rubric():
    with pytest.raises(ValueError, match="provider/model"):
        checks.judge("gpt", "rubric")
    with pytest.raises(ValueError, match="needs a rubric"):
        checks.judge("demo/echo", "  ")


def test_the_checks_load_no_heavy_dependency():
    import json
    import subprocess
    import sys

    heavy = ("pandas", "jsonschema", "IPython")
    code = f"import sys, json, llmkit.checks; print(json.dumps([m for m in {heavy!r} if m in sys.modules]))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(loaded) == []


def test_an_async_function_is_a_check_alone_and_in_compare(log):
    async def slow_and_fair(text):
        import asyncio

        await asyncio.sleep(0.01)
        return "Paris" in text, "looked for Paris"

    check = checks.as_check(slow_and_fair)
    assert check("Paris!") == checks.CheckResult(True, 1.0, "looked for Paris")
    df = llmkit.compare(["demo/echo"], ["Paris", "Rome"], checks=[slow_and_fair], progress=False)
    assert df["check_slow_and_fair"].tolist() == [1.0, 0.0] and df["passed"].tolist() == [True, False]
