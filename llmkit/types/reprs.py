"""How responses show themselves in a notebook: ``_repr_mimebundle_`` of the wire types, made here.

Pure functions (no IPython): a ``ModelResponse`` as its answer in Markdown with a footer of figures,
an ``ImageResponse`` as its images, an ``EmbeddingResponse`` as a one-line summary. Each bundle has
a ``text/plain`` a terminal can show (the answer, the image list, the summary); ``repr()`` itself is
pydantic's, every field.
"""

from __future__ import annotations

import html
import json
from typing import Any

__all__ = ["embedding_bundle", "image_bundle", "images_html", "images_plain", "response_bundle"]


def response_bundle(response: Any) -> dict[str, str]:
    """A chat answer: its text (or tool calls) as Markdown, then the model and token counts."""
    choices = response.choices or []
    texts = [_choice_text(choice) for choice in choices]
    body = "\n\n---\n\n".join(texts) if len(texts) != 1 else texts[0]
    line = response_footer(response)
    return {"text/markdown": f"{body}\n\n*{line}*", "text/plain": f"{body}\n\n{line}"}


def response_footer(response: Any) -> str:
    parts = [response.model or "ModelResponse"]
    usage = response.usage
    if usage is not None and usage.total_tokens:
        estimated = " (estimated)" if usage.estimated else ""
        parts.append(f"{usage.prompt_tokens} + {usage.completion_tokens} tokens{estimated}")
    reasons = {c.finish_reason for c in response.choices or [] if c.finish_reason and c.finish_reason != "stop"}
    if reasons:
        parts.append("finish: " + ", ".join(sorted(reasons)))
    return " \u00b7 ".join(parts)


def _choice_text(choice: Any) -> str:
    message = choice.message
    if message.content is not None or not message.tool_calls:
        return message.content or ""
    calls = [{"name": call.function.name, "arguments": call.function.arguments} for call in message.tool_calls]
    return "```json\n" + json.dumps(calls, indent=2, ensure_ascii=False) + "\n```"


def image_bundle(response: Any) -> dict[str, str]:
    """One image as PNG data where it is the only one and inline; else HTML with every image."""
    data = getattr(response, "data", None) or []
    plain = images_plain(response)
    if len(data) == 1 and data[0].b64_json and not data[0].revised_prompt:
        return {"image/png": data[0].b64_json, "text/plain": plain}
    return {"text/html": images_html(response), "text/plain": plain}


def images_html(response: Any) -> str:
    """Every image of an ImageResponse, side by side, each captioned with its revised prompt."""
    figures = []
    for image in getattr(response, "data", None) or []:
        src = image.url or (f"data:image/png;base64,{image.b64_json}" if image.b64_json else None)
        if src is None:
            continue
        caption = getattr(image, "revised_prompt", None)
        figures.append(
            '<figure style="margin:0 8px 8px 0">'
            f'<img src="{html.escape(src, quote=True)}" style="max-width:320px;image-rendering:pixelated"/>'
            + (f'<figcaption style="font-size:85%;opacity:.8">{html.escape(caption)}</figcaption>' if caption else "")
            + "</figure>"
        )
    return '<div style="display:flex;flex-wrap:wrap">' + "".join(figures) + "</div>" if figures else "<i>no images</i>"


def images_plain(response: Any) -> str:
    lines = []
    for i, image in enumerate(getattr(response, "data", None) or []):
        where = image.url if image.url and not image.url.startswith("data:") else "inline PNG"
        caption = getattr(image, "revised_prompt", None)
        lines.append(f"[image {i + 1}: {where}]" + (f" {caption}" if caption else ""))
    return "\n".join(lines) or "[no images]"


def embedding_bundle(response: Any) -> dict[str, str]:
    """How many vectors, of how many dimensions, from which model, and the first few numbers."""
    data = response.data or []
    width = len(data[0].embedding) if data else 0
    parts = [f"{len(data)} embedding{'s' if len(data) != 1 else ''} of {width} dimensions"]
    if response.model:
        parts.append(response.model)
    if response.usage is not None and response.usage.total_tokens:
        parts.append(f"{response.usage.total_tokens} tokens")
    line = " \u00b7 ".join(parts)
    first = data[0].embedding if data else []
    if isinstance(first, list) and first:
        preview = ", ".join(f"{v:.4f}" for v in first[:4]) + (", ..." if len(first) > 4 else "")
        line += f"\n[0]: [{preview}]"
    elif isinstance(first, str):
        line += f"\n[0]: base64, {len(first):,} characters"
    return {"text/plain": line, "text/markdown": line.replace("\n", "  \n")}
