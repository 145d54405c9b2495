"""Fixtures for the notebook tests: the real IPython shell, recording or printing its displays."""

import pytest
from IPython.core.displaypub import DisplayPublisher
from IPython.core.interactiveshell import InteractiveShell
from notebook_support import RecordingPublisher

from llmkit.notebook import aliases


@pytest.fixture(autouse=True)
def no_aliases(tmp_path, monkeypatch):
    """Aliases are process-wide, and saved in the settings file: each test starts and ends without
    any, with a settings folder of its own."""
    monkeypatch.setenv("LLMKIT_CONFIG_DIR", str(tmp_path / "config"))
    aliases.reset()
    yield
    aliases.reset()


@pytest.fixture
def shell():
    """The IPython shell with llmkit loaded and a recording display publisher."""
    ip = InteractiveShell.instance()
    ip.display_pub = RecordingPublisher(shell=ip)
    ip.extension_manager.load_extension("llmkit")
    _forget_chats(ip)
    return ip


def _forget_chats(ip):
    """The shell is one for the whole run: each test starts with no conversation in memory and the
    magic's settings at their defaults."""
    from llmkit.notebook.chats import Chats

    magics = ip.magics_manager.registry["LLMMagics"]
    magics.chats = Chats()
    for name in ("default_model", "default_params", "format", "stream"):
        magics.settings.set_trait(name, magics.settings.trait_defaults(name))


@pytest.fixture
def terminal_shell():
    """The same shell with IPython's plain publisher, as in a terminal."""
    ip = InteractiveShell.instance()
    ip.display_pub = DisplayPublisher(shell=ip)
    ip.extension_manager.load_extension("llmkit")
    return ip
