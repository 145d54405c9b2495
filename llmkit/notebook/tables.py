"""The call log as the notebook shows it: recent calls, and a summary per model with its votes.

Used by ``%llm log``, ``%llm summary``, :class:`~llmkit.notebook.widgets.CompareWidget` and
:class:`~llmkit.notebook.widgets.Leaderboard`. Votes are call-log annotations named ``"vote"``: a
comparison's "best" vote marks the chosen call ``best`` and the others ``not_best``; "tie" and
"all_bad" mark every call of the comparison alike.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import llmkit
from llmkit.calllog import config

if TYPE_CHECKING:
    import pandas as pd


__all__ = [
    "BLIND",
    "LOG_COLUMNS",
    "VOTE",
    "VOTE_COUNTS",
    "leaderboard",
    "log_is_off",
    "recent_calls",
    "record_vote",
    "vote_of",
]

VOTE = "vote"  # the annotation's name
BLIND = "blind_mapping"  # annotation on a blind comparison's calls: {"A": model, ...}, set at the vote
#: Leaderboard columns, and the vote value each one counts.
VOTE_COUNTS = {"wins": "best", "losses": "not_best", "ties": "tie", "all_bad": "all_bad"}
#: Leaderboard columns from the ratings (llmkit.evals.ratings).
RATING_COLUMNS = ("rating", "rating_low", "rating_high", "comparisons")

#: What ``%llm log`` shows of each call; ``llmkit.calls.to_dataframe()`` has every column.
LOG_COLUMNS = (
    "started_at",
    "model",
    "source",
    "kind",
    "status",
    "cache_hit",
    "latency_ms",
    "ttft_ms",
    "total_tokens",
    "tokens_per_s",
    "cost_usd",
    "prompt",
    "response",
    "error_message",
    "annotations",
    "call_id",
)


def log_is_off() -> bool:
    return config.log_mode() == "off"


def recent_calls(n: int, everyone: bool = False) -> pd.DataFrame:
    """This session's newest ``n`` calls (every process's with ``everyone=True``), oldest first, as a
    DataFrame of :data:`LOG_COLUMNS`.

    Reads only those rows (``calls.last``), so it stays quick on a log of millions of calls.
    """
    session = {} if everyone else {"session_id": llmkit.calls.session_id}
    calls: pd.DataFrame = llmkit.calls.to_dataframe(last=n, **session)
    return calls[list(LOG_COLUMNS)]


def vote_of(annotations: Any) -> str | None:
    """A call's latest vote, from its ``annotations`` cell."""
    return annotations.get(VOTE) if isinstance(annotations, dict) else None


def record_vote(
    records: list[dict[str, Any]], kind: str, chosen: str | None, group_id: str, mapping: Any, source: str
) -> None:
    """Put a comparison's vote on its calls (``records``): the ``chosen`` model's call ``best`` and the
    others ``not_best``, or all of them ``kind``; a blind comparison's ``mapping`` goes with it.
    All in one write, so that a reader never sees half a vote."""
    items: list[tuple[str, str, Any, str | None]] = []
    for record in records:
        label = kind if kind != "best" else ("best" if record["model"] == chosen else "not_best")
        items.append((record["call_id"], VOTE, label, group_id))
    if mapping is not None:
        items.extend((record["call_id"], BLIND, mapping, group_id) for record in records)
    llmkit.calls.annotate_many(items, source=source)
    from llmkit.notebook.leaderboard import refresh_leaderboards  # a vote makes no call: tell the boards

    refresh_leaderboards()


def leaderboard(**filters: Any) -> pd.DataFrame:
    """``calls.summary(**filters)`` with the votes counted per model (wins, losses, ties, all_bad), a
    rating from votes and pairwise verdicts (``rating``, ``rating_low``, ``rating_high``, see
    :mod:`llmkit.evals.ratings`) and the pass rate of checked calls; best first: highest rating,
    then most wins, then fewest losses, then by name."""
    from llmkit.calllog import frame
    from llmkit.evals.ratings import ratings_table
    from llmkit.evals.stats import evaluation_columns

    df = llmkit.calls.to_dataframe(**filters)
    table = frame.summary(df).join(evaluation_columns(df))
    votes, models = df["annotations"].map(vote_of), df["model"].astype(str)
    for column, value in VOTE_COUNTS.items():
        table[column] = (votes == value).groupby(models).sum().reindex(table.index, fill_value=0).astype(int)
    ratings = ratings_table(df, llmkit.calls.annotations())
    for column in RATING_COLUMNS:
        table[column] = ratings[column].reindex(table.index)
    table["comparisons"] = table["comparisons"].fillna(0).astype(int)
    return table.sort_values(["rating", "wins", "losses"], ascending=[False, False, True], kind="stable")
