"""The OpenAI-compatible proxy (``llmkit serve --config config.yaml``); needs ``llmkit[proxy]``.

``load_config`` reads and checks a config file, ``build_app`` makes the ASGI app for it, ``serve``
runs it. ``import llmkit`` does not import this package.
"""

from llmkit.proxy.app import build_app
from llmkit.proxy.config import ConfigError, ProxyConfig, load_config
from llmkit.proxy.server import serve

__all__ = ["ConfigError", "ProxyConfig", "build_app", "load_config", "serve"]
