"""Incremental decoders for streamed HTTP bodies: server-sent events and JSON lines.

Pure: feed them bytes as they arrive, get back the complete events those bytes finished. A network
read can end anywhere (mid-line, mid-UTF-8 character), so a partial line waits in a buffer for the
next read. Each event is ``(event_type, data)`` with ``data`` a str; what the data means (JSON, the
``[DONE]`` marker) is for the caller to decide.
"""

from __future__ import annotations

__all__ = ["JSONLinesDecoder", "SSEDecoder", "decoder_for"]


class SSEDecoder:
    """Server-sent events (the ``text/event-stream`` format): ``data:`` lines up to a blank line.

    Lines end with ``\n``, ``\r\n`` or a lone ``\r``, as the specification allows; a ``\r`` that ends
    one read may be the first half of a ``\r\n`` split across two reads.
    """

    def __init__(self) -> None:
        self._buffer = b""
        self._data: list[str] = []
        self._event = "message"
        self._after_cr = False  # the last read ended with \r: a \n starting the next one belongs to it

    def feed(self, chunk: bytes) -> list[tuple[str, str]]:
        if self._after_cr:
            self._after_cr = False
            if chunk[:1] == b"\n":
                chunk = chunk[1:]
        data = self._buffer + chunk if self._buffer else chunk
        if b"\r" in data:
            self._after_cr = data[-1:] == b"\r"
            data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        lines = data.split(b"\n")
        self._buffer = lines.pop()  # the unfinished last line ("" when the read ended a line)
        events: list[tuple[str, str]] = []
        for line in lines:  # the two common lines inline, the rest through the general parsing
            if line[:6] == b"data: ":
                self._data.append(line[6:].decode("utf-8", "replace"))
            elif not line and self._event == "message":
                if self._data:
                    events.append(("message", "\n".join(self._data)))
                    self._data = []
            else:
                self._line(line, events)
        return events

    def close(self) -> list[tuple[str, str]]:
        """Events still pending when the body ended (a last event without its blank line)."""
        events: list[tuple[str, str]] = []
        if self._buffer:
            self._line(self._buffer, events)
            self._buffer = b""
        self._line(b"", events)
        return events

    def _line(self, line: bytes, events: list[tuple[str, str]]) -> None:
        if not line:  # a blank line dispatches the event collected so far
            if self._data:
                events.append((self._event, "\n".join(self._data)))
                self._data = []
            self._event = "message"
            return
        field, _, value = line.partition(b":")
        if value[:1] == b" ":
            value = value[1:]
        if field == b"data":
            self._data.append(value.decode("utf-8", "replace"))
        elif field == b"event":
            self._event = value.decode("utf-8", "replace") or "message"
        # Comments (":" lines, used as keep-alives), "id" and "retry" carry nothing we use.


class JSONLinesDecoder:
    """Line-delimited JSON (``application/x-ndjson``, ``jsonl``): one event per non-blank line."""

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, chunk: bytes) -> list[tuple[str, str]]:
        lines = (self._buffer + chunk).split(b"\n")
        self._buffer = lines.pop()
        return [("message", line.decode("utf-8", "replace")) for line in lines if line.strip()]

    def close(self) -> list[tuple[str, str]]:
        rest, self._buffer = self._buffer, b""
        return [("message", rest.decode("utf-8", "replace"))] if rest.strip() else []


_DECODERS: dict[str, type[SSEDecoder | JSONLinesDecoder]] = {
    "sse": SSEDecoder,
    "jsonl": JSONLinesDecoder,
    "ndjson": JSONLinesDecoder,
}


def decoder_for(stream_format: str) -> SSEDecoder | JSONLinesDecoder:
    """A fresh decoder for ``"sse"`` or ``"jsonl"`` (alias ``"ndjson"``)."""
    try:
        return _DECODERS[stream_format]()
    except KeyError:
        raise ValueError(f"stream_format must be 'sse' or 'jsonl', got {stream_format!r}") from None
