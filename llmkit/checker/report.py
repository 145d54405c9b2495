"""What ``llmkit.check`` found: rows of (check, status, detail), printed as text or rendered as HTML."""

from __future__ import annotations

import html
from dataclasses import dataclass

__all__ = ["FAIL", "PASS", "SKIP", "WARN", "CheckReport", "CheckRow"]

PASS, WARN, FAIL, SKIP = "pass", "warn", "fail", "skip"
_MARKS = {PASS: "ok", WARN: "warn", FAIL: "FAIL", SKIP: "-"}
_COLOURS = {PASS: "#1a7f37", WARN: "#9a6700", FAIL: "#cf222e", SKIP: "#6e7781"}


@dataclass
class CheckRow:
    check: str
    status: str
    detail: str


class CheckReport:
    """The outcome of :func:`check`: rows of (check, status, detail); ``ok`` when nothing failed."""

    def __init__(self, title: str, rows: list[CheckRow]) -> None:
        self.title = title
        self.rows = rows

    @property
    def ok(self) -> bool:
        return all(row.status != FAIL for row in self.rows)

    def __getitem__(self, name: str) -> CheckRow:
        for row in self.rows:
            if row.check == name:
                return row
        raise KeyError(f"no check named {name!r}; checks: {', '.join(row.check for row in self.rows)}")

    def __str__(self) -> str:
        width = max(len(row.check) for row in self.rows)
        lines = [self.title, ""]
        lines += [f"{_MARKS[row.status]:>4}  {row.check:<{width}}  {row.detail}" for row in self.rows]
        lines += ["", self._summary()]
        return "\n".join(lines)

    __repr__ = __str__

    def _repr_html_(self) -> str:
        cells = "".join(
            f"<tr><td style='color:{_COLOURS[row.status]};font-weight:bold'>{_MARKS[row.status]}</td>"
            f"<td style='text-align:left'>{html.escape(row.check)}</td>"
            f"<td style='text-align:left'>{html.escape(row.detail)}</td></tr>"
            for row in self.rows
        )
        return (
            f"<div><b>{html.escape(self.title)}</b><table><thead><tr><th></th><th style='text-align:left'>check</th>"
            f"<th style='text-align:left'>detail</th></tr></thead><tbody>{cells}</tbody></table>"
            f"<p>{html.escape(self._summary())}</p></div>"
        )

    def _summary(self) -> str:
        counts = {status: sum(row.status == status for row in self.rows) for status in (PASS, WARN, FAIL, SKIP)}
        return ", ".join(f"{n} {status}" for status, n in counts.items() if n) + ("" if self.ok else " — see FAIL rows")
