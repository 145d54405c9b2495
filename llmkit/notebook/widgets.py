"""The notebook widgets: :class:`CompareWidget` (compare_widget.py) and :class:`Leaderboard` (leaderboard.py)."""

from llmkit.notebook.compare_widget import CompareWidget
from llmkit.notebook.leaderboard import Leaderboard

__all__ = ["CompareWidget", "Leaderboard"]
