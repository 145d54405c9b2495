"""The magic's settings as an IPython configurable: ``%config LLM.default_model = "demo/lorem"``,
``c.LLM.aliases = {...}`` in ``ipython_config.py``, and the same names in llmkit's settings file.

Layers, lowest first: the built-in defaults, the settings file (:mod:`llmkit.settings`, written by
``%llm default`` and ``%llm alias``), IPython's config (``ipython_config.py``), then ``%config`` in the
session. ``c.LLM.aliases`` adds to the file's aliases; ``%config LLM.aliases = {...}`` replaces them
for the session.
"""

from __future__ import annotations

import sys
from typing import Any

from traitlets import Bool, Dict, Enum, TraitError, Unicode, observe
from traitlets.config import Configurable

from llmkit import settings
from llmkit.notebook import aliases as alias_store
from llmkit.notebook.display import FORMATS

__all__ = ["LLM", "SETTINGS"]

#: The settings the file may hold for the magic (``log`` is the call log's, see llmkit.calllog.config).
SETTINGS = ("default_model", "aliases", "default_params", "format", "stream")


class LLM(Configurable):
    """Settings of the ``%%llm`` magic."""

    default_model = Unicode(
        None, allow_none=True, help="the model %%llm uses when the line names none ('provider/model' or an alias)"
    ).tag(config=True)
    aliases = Dict(
        key_trait=Unicode(), value_trait=Unicode(), help="short names for models: {'fast': 'demo/echo'}"
    ).tag(config=True)
    default_params = Dict(
        help="parameters sent with every %%llm call unless the line sets them: {'temperature': 0.2}"
    ).tag(config=True)
    format = Enum(FORMATS, default_value="markdown", help="how answers are shown when the line gives no -f").tag(
        config=True
    )
    stream = Bool(True, help="stream answers; False waits for the whole answer unless the line says --stream").tag(
        config=True
    )

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)  # IPython's config (c.LLM...) is applied here
        given = self.config.LLM if "LLM" in self.config else {}
        try:
            saved = settings.read()
        except settings.SettingsError as exc:  # say so, and start with the defaults: the magic still works
            _say(f"{exc}; using the defaults meanwhile")
            saved = {}
        with self.hold_trait_notifications():
            for name in SETTINGS:
                if name in saved and name != "aliases" and name not in given:
                    try:
                        setattr(self, name, saved[name])
                    except TraitError as exc:
                        _say(f"{settings.path()}: {name} = {saved[name]!r} cannot be used ({exc}); fix or remove it")
            table = saved.get("aliases", {})
            self.aliases = {**(table if isinstance(table, dict) else {}), **self.aliases}
        alias_store.replace(self.aliases)

    def origin(self, name: str) -> str:
        """Where the setting's value comes from, in words."""
        if "LLM" in self.config and name in self.config.LLM:
            return "IPython config"
        if name in settings.read():
            return f"settings file {settings.path()}"
        return "built-in default"

    @observe("aliases")
    def _aliases_changed(self, change: Any) -> None:
        alias_store.replace(change["new"])


def _say(message: str) -> None:
    print(f"llmkit: {message}", file=sys.stderr)
