import os
import shutil
import tempfile

import pytest

# Tests never write to the user's real call log, and neither do processes they start, which inherit
# this variable. Set before anything logs a call; the log opens its file on first use.
_LOG_DIR = tempfile.mkdtemp(prefix="llmkit-tests-")
os.environ["LLMKIT_LOG_PATH"] = os.path.join(_LOG_DIR, "calls.db")
os.environ.pop("LLMKIT_LOG", None)

import llmkit  # noqa: E402 - after the environment is set
from llmkit.providers import registry  # noqa: E402


@pytest.fixture(autouse=True)
def clean_registry():
    """Each test starts with an empty custom_provider_map and only the built-in providers."""
    registered = dict(registry._registered)
    llmkit.custom_provider_map = []
    yield
    llmkit.custom_provider_map = []
    registry._registered.clear()
    registry._registered.update(registered)


@pytest.fixture(autouse=True, scope="session")
def remove_test_call_log():
    yield
    from llmkit.calllog import configure_log

    configure_log("memory")  # writes what is queued, closes the file
    shutil.rmtree(_LOG_DIR, ignore_errors=True)
