"""Notebook widgets (ipywidgets 8): ``from llmkit.widgets import CompareWidget, Leaderboard``.

Needs ``pip install 'llmkit[notebook]'``; ``import llmkit`` alone never loads ipywidgets.
"""

from llmkit.notebook.widgets import CompareWidget, Leaderboard

__all__ = ["CompareWidget", "Leaderboard"]
