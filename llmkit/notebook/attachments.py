"""``--attach PATH_OR_URL``: images in the user message, as OpenAI-style ``image_url`` content parts.

A local file is read and sent as a ``data:`` URL; an ``http(s)://`` or ``data:`` URL is passed on as
it is, for the model's server to fetch: llmkit itself never fetches anything.
"""

from __future__ import annotations

import base64
import mimetypes
from pathlib import Path
from typing import Any

__all__ = ["MAX_BYTES", "image_part", "user_message"]

MAX_BYTES = 20 * 1024 * 1024  # OpenAI's limit per image; a larger file is surely a mistake
_URL_SCHEMES = ("http://", "https://", "data:")


def user_message(text: str, attachments: list[str]) -> dict[str, Any]:
    """The user message: plain text, or a text part followed by one image part per attachment."""
    if not attachments:
        return {"role": "user", "content": text}
    return {"role": "user", "content": [{"type": "text", "text": text}, *map(image_part, attachments)]}


def image_part(where: str) -> dict[str, Any]:
    """An ``image_url`` part for a URL or a local image file; ValueError saying what is wrong."""
    if where.startswith(_URL_SCHEMES):
        return {"type": "image_url", "image_url": {"url": where}}
    path = Path(where).expanduser()
    if not path.is_file():
        raise ValueError(f"--attach {where}: no such file; give an image file or an http(s):// URL")
    kind = mimetypes.guess_type(path.name)[0]
    if kind is None or not kind.startswith("image/"):
        raise ValueError(
            f"--attach {where}: not an image by its name ({kind or 'unknown type'}); attach a PNG, JPEG, GIF or WebP"
        )
    size = path.stat().st_size
    if size > MAX_BYTES:
        raise ValueError(
            f"--attach {where}: {size:,} bytes is over the {MAX_BYTES // 2**20} MiB an image may have; resize it"
        )
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return {"type": "image_url", "image_url": {"url": f"data:{kind};base64,{data}"}}
