"""Notebook widgets for comparing models (ipywidgets 8): ``from llmkit.widgets import CompareWidget``.

Needs ``pip install 'llmkit[notebook]'``; ``import llmkit`` alone never loads ipywidgets.
"""

from llmkit.notebook.widgets import CompareWidget

__all__ = ["CompareWidget"]
