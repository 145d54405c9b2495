"""``%%llm --chat NAME``: conversations kept in the call log, so that they survive a kernel restart.

Every call of a chat is logged with ``conversation_id=NAME``; each call's ``messages`` column holds
everything sent (system prompt, earlier turns, the new message) and its ``response`` the answer, so
the newest successful call of a thread is the whole thread. A thread is one model's side of the chat:
``--chat NAME`` with several models keeps one per model. This kernel keeps the threads it has used in
memory; one it has not used yet is read back from the log. ``--reset`` starts over; so that a reset
survives a restart before the next call, it is noted on the thread's newest call as an annotation
named ``chat_reset``. With the log off, chats last as long as the kernel.
"""

from __future__ import annotations

from typing import Any

import llmkit
from llmkit.messages import content_text, message_field
from llmkit.notebook import tables

__all__ = ["RESET", "Chats"]

RESET = "chat_reset"  # the annotation on a thread's newest call that a reset left behind


class Chats:
    """Every chat this kernel knows: threads by (chat name, "provider/model"), system prompts by name."""

    def __init__(self) -> None:
        self._threads: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self._systems: dict[str, str | None] = {}

    # -- a cell's messages, and what it leaves behind ----------------------------------------------
    def messages(self, name: str, model: str, user: dict[str, Any], system: str | None) -> list[dict[str, Any]]:
        """What to send ``model`` for the chat: its system prompt (``system`` replaces it), the thread
        so far, and the new ``user`` message."""
        system = system if system is not None else self.system(name)
        head = [{"role": "system", "content": system}] if system else []
        return [*head, *self.thread(name, model), user]

    def remember(self, name: str, model: str, sent: list[dict[str, Any]], answer: str, system: str | None) -> None:
        """A call of the chat succeeded: its messages and answer are the thread now."""
        turns = [m for m in sent if message_field(m, "role") != "system"]
        self._threads[(name, model)] = [*turns, {"role": "assistant", "content": answer}]
        if system is not None:
            self._systems[name] = system

    def thread(self, name: str, model: str) -> list[dict[str, Any]]:
        key = (name, model)
        if key not in self._threads:
            self._threads[key] = self._restore(name, model)
        return self._threads[key]

    def system(self, name: str) -> str | None:
        if name not in self._systems:
            newest = _newest(name)
            self._systems[name] = _system_of(newest) if newest is not None else None
        return self._systems[name]

    # -- %llm chat NAME --reset | --show, %llm chats -------------------------------------------------
    def reset(self, name: str) -> list[str]:
        """Start the chat over for every model; returns the models whose thread was dropped."""
        models = sorted({model for chat, model in self._threads if chat == name} | set(_logged_models(name)))
        newest = [_newest(name, model) for model in models] if not tables.log_is_off() else []
        call_ids = [row["call_id"] for row in newest if row is not None and not _was_reset(row)]
        if call_ids:
            llmkit.calls.annotate(call_ids, RESET, True, source="magic")
        for model in models:
            self._threads[(name, model)] = []
        self._systems[name] = None
        return models

    def transcript(self, name: str) -> str:
        """The chat as Markdown: each model's thread, turn by turn."""
        models = sorted({model for chat, model in self._threads if chat == name} | set(_logged_models(name)))
        sections = []
        system = self.system(name)
        for model in models:
            turns = self.thread(name, model)
            if not turns:
                continue
            lines = [f"### {model}"] + ([f"**system:** {system}"] if system else [])
            lines += [f"**{message_field(m, 'role')}:** {content_text(message_field(m, 'content'))}" for m in turns]
            sections.append("\n\n".join(lines))
        return "\n\n".join(sections)

    def listing(self) -> Any:
        """A DataFrame: one row per chat, with its models, turns and when it was last used."""
        import pandas as pd

        rows: dict[str, dict[str, Any]] = {}
        if not tables.log_is_off():
            df = llmkit.calls.to_dataframe(source="magic")
            df = df[df["conversation_id"].notna() & (df["status"] == "ok")]
            for name, calls in df.groupby("conversation_id", sort=False):
                rows[name] = {
                    "models": ", ".join(sorted(calls["model"].astype(str).unique())),
                    "calls": len(calls),
                    "last_used": calls["started_at"].max(),
                    "last_prompt": calls["prompt"].iloc[-1],
                }
        for (name, model), turns in self._threads.items():  # a chat of this kernel with the log off
            if turns and name not in rows:
                rows[name] = {"models": model, "calls": len(turns) // 2, "last_used": None, "last_prompt": None}
        columns = ["models", "calls", "last_used", "last_prompt"]
        table = pd.DataFrame.from_dict(rows, orient="index", columns=columns)
        return table.rename_axis("chat").sort_values("last_used", ascending=False, na_position="last")

    # -- reading the log -------------------------------------------------------------------------------
    def _restore(self, name: str, model: str) -> list[dict[str, Any]]:
        newest = _newest(name, model)
        if newest is None or _was_reset(newest):
            return []
        turns = [m for m in newest["messages"] or [] if message_field(m, "role") != "system"]
        return [*turns, {"role": "assistant", "content": newest["response"] or ""}]


def _newest(name: str, model: str | None = None) -> dict[str, Any] | None:
    """The newest successful call of the chat (of one model's thread), with its annotations."""
    if tables.log_is_off():
        return None
    df = llmkit.calls.to_dataframe(last=1, conversation_id=name, status="ok", model=model)
    return None if df.empty else df.iloc[-1].to_dict()


def _was_reset(row: dict[str, Any]) -> bool:
    return isinstance(row.get("annotations"), dict) and RESET in row["annotations"]


def _system_of(row: dict[str, Any]) -> str | None:
    if _was_reset(row):
        return None
    first = (row["messages"] or [None])[0]
    return content_text(message_field(first, "content")) if first and message_field(first, "role") == "system" else None


def _logged_models(name: str) -> list[str]:
    if tables.log_is_off():
        return []
    records = llmkit.calls.records(conversation_id=name)
    return sorted({r["model"] for r in records if r["model"]})
