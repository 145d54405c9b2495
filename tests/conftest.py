import os
import shutil
import tempfile

import pytest

# Tests never write to the user's real call log, and neither do processes they start, which inherit
# this variable. Set before anything logs a call; the log opens its file on first use.
_LOG_DIR = tempfile.mkdtemp(prefix="llmkit-tests-")
os.environ["LLMKIT_LOG_PATH"] = os.path.join(_LOG_DIR, "calls.db")
# Nor to the user's settings file (default model, aliases, `llmkit logs off`).
os.environ["LLMKIT_CONFIG_DIR"] = os.path.join(_LOG_DIR, "config")
os.environ.pop("LLMKIT_SESSION_ID", None)
os.environ.pop("LLMKIT_LOG", None)
os.environ.pop("LLMKIT_PRICES", None)  # a developer's own price table would change the tests' costs
os.environ.pop("LLMKIT_CACHE", None)  # the response cache is off unless a test turns it on

import llmkit  # noqa: E402 - after the environment is set
from llmkit.providers import registry  # noqa: E402

# clean_registry restores the registry as it was before each test: load the built-in providers
# first, or the first test to load them would leave the next one without "demo".
llmkit.provider_names()


@pytest.fixture(autouse=True)
def clean_registry():
    """Each test starts with an empty custom_provider_map and only the built-in providers."""
    registry.provider_names()  # load the built-ins first, so that the snapshot holds them
    registered = dict(registry._registered)
    llmkit.custom_provider_map = []
    yield
    llmkit.custom_provider_map = []
    registry._registered.clear()
    registry._registered.update(registered)


@pytest.fixture(autouse=True)
def cache_off():
    """Each test ends with the response cache off, as the next one expects."""
    yield
    llmkit.configure_cache("off")


@pytest.fixture
def log(tmp_path):
    """llmkit.calls writing to a fresh SQLite file in this test's tmp dir; callbacks and prices reset."""
    from llmkit.calllog import configure_log, costs, recorder

    configure_log("sqlite", path=tmp_path / "calls.db", flush_interval=0.05)
    yield llmkit.calls
    recorder.callbacks.clear()
    configure_log()
    recorder._warned.clear()
    costs._prices.clear()


@pytest.fixture(autouse=True, scope="session")
def remove_test_call_log():
    yield
    from llmkit.calllog import configure_log, spill

    configure_log("memory")  # writes what is queued, closes the file
    shutil.rmtree(_LOG_DIR, ignore_errors=True)
    if spill._spill is not None:  # the spill file of tests that gave the log a bad file on purpose
        spill._spill.close()
        for path in spill._spill.path.parent.glob(spill._spill.path.name + "*"):
            path.unlink()


@pytest.fixture(scope="session")
def postgres_server():
    """A throwaway PostgreSQL server for the session (tests/postgres_server.py), removed afterwards.

    Where none can run, the tests using it skip saying why; on CI (``CI`` or ``LLMKIT_REQUIRE_POSTGRES``
    set) they fail instead, so that they never skip unnoticed.
    """
    from postgres_server import PostgresServer, PostgresUnavailable

    try:
        import psycopg  # noqa: F401

        server = PostgresServer()
    except (ImportError, PostgresUnavailable) as exc:
        reason = f"no PostgreSQL for the tests: {exc}"
        if os.environ.get("CI") or os.environ.get("LLMKIT_REQUIRE_POSTGRES"):
            pytest.fail(reason + " (required on CI)")
        pytest.skip(reason)
    try:
        server.start()
        yield server
    finally:
        server.remove()


@pytest.fixture(scope="module")
def server():
    """tests/fake_servers.py's OpenAI-compatible server on a loopback port, one per test module (a
    module that wants another, one checking an API key say, defines its own ``server``)."""
    from fake_servers import FakeServer, openai_app

    with FakeServer(openai_app()) as srv:
        yield srv


@pytest.fixture
def base(server):
    """The ``server``'s base URL for clients (``.../v1``), its record of requests emptied."""
    server.requests.clear()
    return server.url + "/v1"
