"""Reading chat messages, which arrive as dicts or as message objects, with text or content parts."""

from __future__ import annotations

from typing import Any

__all__ = ["content_text", "last_user_text", "message_field", "prompt_text"]


def message_field(message: Any, name: str) -> Any:
    return message.get(name) if isinstance(message, dict) else getattr(message, name, None)


def content_text(content: Any) -> str:
    """A message's content as text: content parts keep their text parts, joined by spaces."""
    if isinstance(content, list):
        return " ".join(part.get("text", "") for part in content if isinstance(part, dict) and "text" in part)
    return "" if content is None else content if isinstance(content, str) else str(content)


def last_user_text(messages: Any) -> str:
    """The text of the last user message ("" if there is none): what a single-prompt API wants.

    Lenient, since the call log reads the messages of refused calls too: a string is its own text,
    anything else that is not a list of messages has none.
    """
    if isinstance(messages, str):
        return messages
    if not isinstance(messages, (list, tuple)):
        return ""
    for message in reversed(messages):
        if (message_field(message, "role") or "user") == "user":
            return content_text(message_field(message, "content"))
    return ""


def prompt_text(prompt: Any) -> str:
    """A prompt (a text, or chat messages) as one text: messages as ``role: content`` lines."""
    if prompt is None:
        return ""
    if isinstance(prompt, str):
        return prompt
    return "\n".join(
        f"{message_field(m, 'role') or 'user'}: {content_text(message_field(m, 'content'))}" for m in prompt
    )
