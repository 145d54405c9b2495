"""The call log as the notebook shows it: recent calls, and a summary per model with its votes.

Used by ``%llm log``, ``%llm summary``, :class:`~llmkit.notebook.widgets.CompareWidget` and
:class:`~llmkit.notebook.widgets.Leaderboard`. Votes are call-log annotations named ``"vote"``: a
comparison's "best" vote marks the chosen call ``best`` and the others ``not_best``; "tie" and
"all_bad" mark every call of the comparison alike.
"""

from __future__ import annotations

from typing import Any

import llmkit
from llmkit.calllog import config

__all__ = ["LOG_COLUMNS", "VOTE", "VOTE_COUNTS", "leaderboard", "log_is_off", "recent_calls", "vote_of"]

VOTE = "vote"  # the annotation's name
#: Leaderboard columns, and the vote value each one counts.
VOTE_COUNTS = {"wins": "best", "losses": "not_best", "ties": "tie", "all_bad": "all_bad"}

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


def recent_calls(n: int) -> Any:
    """The newest ``n`` calls, oldest first, as a DataFrame of :data:`LOG_COLUMNS`.

    Reads only those rows (``calls.last``), so it stays quick on a log of millions of calls.
    """
    return llmkit.calls.to_dataframe(last=n)[list(LOG_COLUMNS)]


def vote_of(annotations: Any) -> str | None:
    """A call's latest vote, from its ``annotations`` cell."""
    return annotations.get(VOTE) if isinstance(annotations, dict) else None


def leaderboard(**filters: Any) -> Any:
    """``calls.summary(**filters)`` with the votes counted per model (wins, losses, ties, all_bad),
    best first: most wins, then fewest losses, then by name."""
    from llmkit.calllog import frame

    df = llmkit.calls.to_dataframe(**filters)
    table = frame.summary(df)
    votes, models = df["annotations"].map(vote_of), df["model"].astype(str)
    for column, value in VOTE_COUNTS.items():
        table[column] = (votes == value).groupby(models).sum().reindex(table.index, fill_value=0).astype(int)
    return table.sort_values(["wins", "losses"], ascending=[False, True], kind="stable")
