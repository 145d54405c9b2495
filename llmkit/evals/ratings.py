"""A rating per model from pairwise outcomes: CompareWidget votes and pairwise judge verdicts alike.

Each outcome is (model_a, model_b, result) with result 1 (a better), 0 (b better) or 0.5 (a tie).
:func:`bradley_terry` fits Bradley–Terry strengths by Hunter's MM algorithm, with every model also
given one win and one loss against a fixed reference (a weak prior that keeps an unbeaten model
finite), reports them on the Elo scale (1000 = the reference, +400 = ten times the odds), and a 95%
interval from a bootstrap over the outcomes with a fixed seed, so the same log gives the same table.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from llmkit.evals.scoring import PAIRWISE

if TYPE_CHECKING:
    import pandas as pd


__all__ = ["bradley_terry", "outcomes_from_log", "ratings_table"]

VOTE = "vote"
BASE, SCALE = 1000.0, 400.0


def outcomes_from_log(calls: Any, annotations: Any) -> list[tuple[str, str, float]]:
    """Pairwise outcomes from the log: ``calls`` (a frame with call_id and model) says whose call each
    annotation is on; ``annotations`` is ``llmkit.calls.annotations()``. A "best" vote beats every
    other model of its comparison; "tie" and "all_bad" tie them all; a verdict is one outcome."""
    names = annotations["name"].to_numpy(dtype=object)
    rows = [i for i, name in enumerate(names) if name == VOTE or name == PAIRWISE]
    if not rows:
        return []  # most logs: no votes, no verdicts; skip reading the calls
    annotations = annotations.iloc[rows]
    wanted = calls["call_id"].isin(set(annotations["call_id"].to_numpy(dtype=object)))
    chosen = calls[wanted]
    model_of = dict(
        zip(chosen["call_id"].to_numpy(dtype=object), chosen["model"].to_numpy(dtype=object).astype(str), strict=True)
    )
    outcomes: list[tuple[str, str, float]] = []
    for name, per_group in _latest_by_group(annotations, model_of).items():
        for labels in per_group.values():
            outcomes.extend(_votes(labels) if name == VOTE else _verdict(labels))
    return outcomes


def _latest_by_group(annotations: Any, model_of: dict[str, str]) -> dict[str, dict[str, dict[str, Any]]]:
    """{annotation name: {group_id: {call_id: (model, latest value)}}} for votes and verdicts on ``calls``."""
    grouped: dict[str, dict[str, dict[str, Any]]] = {VOTE: {}, PAIRWISE: {}}
    columns = (annotations[name].to_numpy(dtype=object) for name in ("call_id", "name", "value", "group_id"))
    for call_id, name, value, group_id in zip(*columns, strict=True):
        if name in grouped and call_id in model_of and isinstance(group_id, str):
            grouped[name].setdefault(group_id, {})[call_id] = (model_of[call_id], value)  # later rows win
    return grouped


def _votes(labels: dict[str, tuple[str, Any]]) -> list[tuple[str, str, float]]:
    models = [(model, value) for model, value in labels.values()]
    best = [model for model, value in models if value == "best"]
    if len(best) == 1:
        return [(best[0], model, 1.0) for model, value in models if value == "not_best"]
    tied = sorted(model for model, value in models if value in ("tie", "all_bad"))
    return [(a, b, 0.5) for i, a in enumerate(tied) for b in tied[i + 1 :] if a != b]


_RESULTS = {"win": 1.0, "loss": 0.0, "tie": 0.5}  # A's share of a pairwise verdict


def _verdict(labels: dict[str, tuple[str, Any]]) -> list[tuple[str, str, float]]:
    if len(labels) != 2:
        return []
    (model_a, value_a), (model_b, _) = labels.values()
    outcome = value_a.get("result") if isinstance(value_a, dict) else None
    result = _RESULTS.get(outcome) if isinstance(outcome, str) else None
    return [] if result is None or model_a == model_b else [(model_a, model_b, result)]


def _strengths(wins: Any, games: Any, iterations: int = 1000) -> Any:
    """Bradley–Terry strengths by MM updates, for many data sets at once.

    ``wins`` is (sets, models): wins per model, ties counting half; ``games`` is (sets, models,
    models): games per pair. Every model also plays the reference (strength 1) once won, once lost.
    """
    import numpy as np

    wins = wins + 1.0
    strength = np.ones_like(wins)
    for _ in range(iterations):
        together = games / (strength[:, :, None] + strength[:, None, :])
        updated = wins / (2.0 / (strength + 1.0) + together.sum(axis=2))
        if np.max(np.abs(updated - strength) / strength) < 1e-9:
            return updated
        strength = updated
    return strength


def bradley_terry(outcomes: Iterable[tuple[str, str, float]], *, rounds: int = 200, seed: int = 0) -> pd.DataFrame:
    """A DataFrame indexed by model: ``rating`` (Elo scale), ``rating_low`` / ``rating_high`` (95%
    bootstrap interval over ``rounds`` resamples of the outcomes, seeded) and ``comparisons``."""
    import numpy as np
    import pandas as pd

    outcomes = list(outcomes)
    models = sorted({m for a, b, _ in outcomes for m in (a, b)})
    if not models:
        columns: dict[str, list[float]] = {"rating": [], "rating_low": [], "rating_high": [], "comparisons": []}
        return pd.DataFrame(columns, index=pd.Index([], name="model"), dtype=float)
    index = {model: i for i, model in enumerate(models)}
    # Distinct outcomes and how often each happened: a resample is then one multinomial draw.
    kinds: dict[tuple[int, int, float], int] = {}
    for a, b, result in outcomes:
        key = (index[a], index[b], float(result))
        kinds[key] = kinds.get(key, 0) + 1
    first, second, results = (np.array(column) for column in zip(*kinds, strict=True))
    seen = np.array(list(kinds.values()), dtype=float)
    rng = np.random.default_rng(seed)
    counts = np.vstack([seen, rng.multinomial(len(outcomes), seen / seen.sum(), size=rounds)])
    n = len(models)
    wins = np.zeros((len(counts), n))
    games = np.zeros((len(counts), n, n))
    for k in range(len(seen)):
        wins[:, first[k]] += counts[:, k] * results[k]
        wins[:, second[k]] += counts[:, k] * (1.0 - results[k])
        games[:, first[k], second[k]] += counts[:, k]
        games[:, second[k], first[k]] += counts[:, k]
    ratings = BASE + SCALE * np.log10(_strengths(wins, games))
    return pd.DataFrame(
        {
            "rating": ratings[0],
            "rating_low": np.percentile(ratings[1:], 2.5, axis=0),
            "rating_high": np.percentile(ratings[1:], 97.5, axis=0),
            "comparisons": games[0].sum(axis=1).astype(int),
        },
        index=pd.Index(models, name="model"),
    )


def ratings_table(calls: pd.DataFrame, annotations: pd.DataFrame, **options: Any) -> pd.DataFrame:
    """:func:`bradley_terry` of the votes and verdicts on ``calls`` (see :func:`outcomes_from_log`)."""
    return bradley_terry(outcomes_from_log(calls, annotations), **options)
