"""``%%llm --dry-run``: the calls a cell would make, readable at a glance.

For each model: what kind of call it would be, its messages as a small table (role, content) and its
parameters below. Pure: runs and messages in, a mime bundle (HTML and plain text) out.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from typing import Any

from llmkit.messages import message_field

__all__ = ["content_cell", "plan_bundle"]

_CELL = 'style="text-align:left;vertical-align:top;white-space:pre-wrap"'


def plan_bundle(
    runs: Sequence[Any],
    images: Sequence[bool],
    messages: dict[str, list],
    prompt: str,
    params: dict[str, Any],
    stream: bool,
    chat: str | None,
) -> dict[str, Any]:
    """The plan of every call, as HTML and as plain text; nothing is called."""
    parts_html, parts_text = [], []
    for run, image in zip(runs, images, strict=True):
        name = run.model if run.model == run.target else f"{run.model} ({run.target})"
        if image:
            kind, rows = "image generation", [("prompt", prompt)]
        else:
            kind = "completion, " + ("streamed" if stream else "not streamed")
            kind += f", chat {chat}" if chat else ""
            rows = [(message_field(m, "role"), content_cell(message_field(m, "content"))) for m in messages[run.target]]
        parts_html.append(_html(name, kind, rows, params))
        parts_text.append(_text(name, kind, rows, params))
    return {"text/html": "".join(parts_html), "text/plain": "\n\n".join(parts_text)}


def content_cell(content: Any) -> str:
    """A message's content as a table cell: its text, with attached images named, not spelled out."""
    if not isinstance(content, list):
        return "" if content is None else str(content)
    shown = []
    for part in content:
        if isinstance(part, dict) and part.get("type") == "image_url":
            shown.append(f"[image: {_url_label((part.get('image_url') or {}).get('url', ''))}]")
        elif isinstance(part, dict) and "text" in part:
            shown.append(part["text"])
        else:
            shown.append(json.dumps(part, default=str))
    return "\n".join(shown)


def _url_label(url: str) -> str:
    if not url.startswith("data:"):
        return url
    return f"{url.partition(',')[0]}, {len(url):,} characters"  # a data URL is long and says nothing to read


def _html(name: str, kind: str, rows: list[tuple[str, str]], params: dict[str, Any]) -> str:
    body = "".join(
        f"<tr><td {_CELL}><b>{html.escape(str(r))}</b></td><td {_CELL}>{html.escape(c)}</td></tr>" for r, c in rows
    )
    table = f"<table><thead><tr><th {_CELL}>role</th><th {_CELL}>content</th></tr></thead><tbody>{body}</tbody></table>"
    listed = ", ".join(f"<code>{html.escape(k)}={html.escape(_value(v))}</code>" for k, v in params.items())
    return (
        f'<div style="margin-bottom:12px"><b>{html.escape(name)}</b> · {html.escape(kind)} · dry run, nothing sent'
        f'{table}<div style="font-size:90%">parameters: {listed or "<i>none</i>"}</div></div>'
    )


def _text(name: str, kind: str, rows: list[tuple[str, str]], params: dict[str, Any]) -> str:
    width = max((len(str(role)) for role, _ in rows), default=4)
    lines = [f"{name} · {kind} · dry run, nothing sent"]
    for role, content in rows:
        first, *more = content.split("\n") or [""]
        lines.append(f"  {str(role):<{width}}  {first}")
        lines.extend(f"  {'':<{width}}  {line}" for line in more)
    listed = ", ".join(f"{k}={_value(v)}" for k, v in params.items())
    lines.append(f"  parameters: {listed or 'none'}")
    return "\n".join(lines)


def _value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str)
