"""Blind comparisons: answers shown under letters in a shuffled order, the models named only after
the vote. Pure bookkeeping, used by ``CompareWidget(blind=True)``; nothing here draws anything.
"""

from __future__ import annotations

import random
import string

__all__ = ["Blinding"]


class Blinding:
    """One comparison's labels: ``order`` (the models as shown), ``labels`` ("A", "B", ...) and,
    once :meth:`reveal` was called, ``mapping`` ``{"A": model, ...}``."""

    def __init__(self, models: list[str], rng: random.Random | None = None) -> None:
        if len(models) > len(string.ascii_uppercase):
            raise ValueError(f"a blind comparison labels at most 26 models, got {len(models)}")
        self.order = list(models)
        (rng or random.Random()).shuffle(self.order)
        self.labels = list(string.ascii_uppercase[: len(self.order)])
        self._by_label = dict(zip(self.labels, self.order, strict=True))
        self.mapping: dict[str, str] | None = None

    @property
    def revealed(self) -> bool:
        return self.mapping is not None

    def label(self, model: str) -> str:
        return self.labels[self.order.index(model)]

    def model(self, label: str) -> str:
        """The model shown as ``label``; ValueError naming the labels for anything else."""
        if label not in self._by_label:
            raise ValueError(f"this comparison is blind: vote by label ({', '.join(self.labels)}), got {label!r}")
        return self._by_label[label]

    def reveal(self) -> dict[str, str]:
        self.mapping = dict(self._by_label)
        return self.mapping

    def title(self, model: str) -> str:
        """A pane's title: its letter, and the model once revealed."""
        return f"{self.label(model)} \u00b7 {model}" if self.revealed else self.label(model)

    def scrub(self, text: str, names: dict[str, str]) -> str:
        """``text`` with every name in ``names`` (a name -> label dict) replaced by its label, longest
        names first, until the reveal: an error message or footer must not give a model away."""
        if self.revealed:
            return text
        for name in sorted(names, key=len, reverse=True):
            text = text.replace(name, names[name])
        return text
