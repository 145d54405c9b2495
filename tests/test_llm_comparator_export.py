"""export_llm_comparator writes the JSON LLM Comparator loads; validated against the viewer's format."""

import json

import pytest
from evals_support import Fixed, KeywordJudge, register

import llmkit
from llmkit import checks

EXAMPLE_KEYS = {
    "input_text",
    "tags",
    "output_text_a",
    "output_text_b",
    "score",
    "individual_rater_scores",
    "custom_fields",
}
RATER_KEYS = {"is_flipped", "score", "rating_label", "rationale"}
# The viewer's field types (client/lib/types.ts FieldType); per-model values are [a, b].
FIELD_TYPES = {
    "number", "string", "category", "text", "url", "image_path", "image_byte", "per_model_boolean",
    "per_model_number", "per_model_category", "per_model_text", "per_rating_string", "per_rating_per_model_category",
}  # fmt: skip


def validate(document):
    """Everything the viewer needs, as it reads the file (a failed assert names what is missing)."""
    assert set(document) >= {"metadata", "models", "examples"}
    schema = document["metadata"]["custom_fields_schema"]
    assert isinstance(schema, list) and all(set(f) >= {"name", "type"} and f["type"] in FIELD_TYPES for f in schema)
    assert len(document["models"]) == 2 and all(isinstance(m["name"], str) for m in document["models"])
    assert isinstance(document.get("rationale_clusters", []), list)
    for example in document["examples"]:
        assert EXAMPLE_KEYS <= set(example)
        assert isinstance(example["input_text"], str) and isinstance(example["tags"], list)
        assert isinstance(example["output_text_a"], str) and isinstance(example["output_text_b"], str)
        assert example["score"] is None or isinstance(example["score"], (int, float))
        for rating in example["individual_rater_scores"]:
            assert RATER_KEYS <= set(rating) and isinstance(rating["is_flipped"], bool)
        for field in schema:
            value = example["custom_fields"][field["name"]]
            if field["type"].startswith("per_model_"):
                assert isinstance(value, list) and len(value) == 2
                kind = {"per_model_number": (int, float), "per_model_boolean": bool}.get(field["type"], str)
                assert all(v is None or isinstance(v, kind) for v in value), field
            elif field["type"] == "number":
                assert value is None or isinstance(value, (int, float))


def run(log, samples=1):
    register(m=Fixed({"good": "Paris, of course.", "bad": "Lyon?"}), grader=KeywordJudge())
    prompts = ["Capital of France?", "Where is the Louvre?"]
    return llmkit.compare(
        ["m/good", "m/bad"], prompts, samples=samples, checks=[checks.contains("Paris")], progress=False
    )


def test_a_judged_export_scores_positive_when_a_is_better(log, tmp_path):
    df = run(log, samples=2)
    path = llmkit.export_llm_comparator(df, tmp_path / "cmp.json", model_a="m/good", model_b="m/bad", judge="grader/j")
    document = json.loads(path.read_text())
    validate(document)
    assert [m["name"] for m in document["models"]] == ["m/good", "m/bad"]
    assert len(document["examples"]) == 4  # 2 prompts x 2 samples
    first = document["examples"][0]
    assert first["input_text"] == "Capital of France?" and first["output_text_a"] == "Paris, of course."
    assert first["score"] == 1.0 and all(r["score"] == 1.0 for r in first["individual_rater_scores"])
    assert [r["is_flipped"] for r in first["individual_rater_scores"]] == [False, True]
    types = {f["name"]: f["type"] for f in document["metadata"]["custom_fields_schema"]}
    assert types["latency_ms"] == types["check_contains_paris"] == "per_model_number"
    assert types["passed"] == "per_model_boolean" and types["sample"] == "number"
    assert first["custom_fields"]["check_contains_paris"] == [1.0, 0.0]
    assert first["custom_fields"]["passed"] == [True, False]
    # the other way round, the score's sign flips
    flipped = llmkit.export_llm_comparator(df, tmp_path / "b.json", model_a="m/bad", model_b="m/good", judge="grader/j")
    assert json.loads(flipped.read_text())["examples"][0]["score"] == -1.0
    # the verdicts are in the log, where ratings count them
    assert (log.annotations()["name"] == "pairwise").sum() == 2 * 4 * 2


def test_an_export_without_a_judge_and_from_a_slice_of_the_log(log, tmp_path):
    df = run(log)
    plain = json.loads(
        llmkit.export_llm_comparator(df, tmp_path / "p.json", model_a="m/good", model_b="m/bad").read_text()
    )
    validate(plain)
    assert [e["score"] for e in plain["examples"]] == [None, None]
    from_log = log.to_dataframe(run_id=df["run_id"][0])
    document = json.loads(
        llmkit.export_llm_comparator(from_log, tmp_path / "l.json", model_a="m/good", model_b="m/bad").read_text()
    )
    validate(document)
    assert [e["output_text_b"] for e in document["examples"]] == ["Lyon?", "Lyon?"]
    assert document["examples"][0]["custom_fields"]["check_contains_paris"] == [1.0, 0.0]  # from the annotations


def test_a_frame_without_the_two_models_is_refused_and_nothing_is_written(log, tmp_path):
    df = llmkit.compare(["demo/echo"], ["x"], progress=False)
    with pytest.raises(ValueError, match=r"two different models.*the frame has demo/echo"):
        llmkit.export_llm_comparator(df, tmp_path / "x.json", model_a="demo/echo", model_b="demo/lorem")
    with pytest.raises(ValueError, match="two different models"):
        llmkit.export_llm_comparator(df, tmp_path / "x.json", model_a="demo/echo", model_b="demo/echo")
    with pytest.raises(llmkit.BadRequestError, match="unknown provider 'nojudge'"):
        two = llmkit.compare(["demo/echo", "demo/lorem"], ["x"], progress=False, tokens_per_second=0)
        llmkit.export_llm_comparator(
            two, tmp_path / "x.json", model_a="demo/echo", model_b="demo/lorem", judge="nojudge/j"
        )
    assert list(tmp_path.glob("x.json*")) == []
