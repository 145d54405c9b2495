import pytest

import llmkit
from llmkit.providers import registry


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
