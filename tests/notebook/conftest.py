"""Fixtures for the notebook tests: the real IPython shell, recording or printing its displays."""

import pytest
from IPython.core.displaypub import DisplayPublisher
from IPython.core.interactiveshell import InteractiveShell
from notebook_support import RecordingPublisher

from llmkit.notebook import aliases


@pytest.fixture(autouse=True)
def no_aliases():
    """Aliases are process-wide: each test starts and ends without any."""
    aliases._aliases.clear()
    yield
    aliases._aliases.clear()


@pytest.fixture
def shell():
    """The IPython shell with llmkit loaded and a recording display publisher."""
    ip = InteractiveShell.instance()
    ip.display_pub = RecordingPublisher(shell=ip)
    ip.extension_manager.load_extension("llmkit")
    return ip


@pytest.fixture
def terminal_shell():
    """The same shell with IPython's plain publisher, as in a terminal."""
    ip = InteractiveShell.instance()
    ip.display_pub = DisplayPublisher(shell=ip)
    ip.extension_manager.load_extension("llmkit")
    return ip
