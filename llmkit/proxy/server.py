"""Running the proxy: load the config, warn about risky set-ups, serve with uvicorn.

One process, uvloop and httptools where installed (they are in the ``proxy`` extra). On SIGINT or
SIGTERM uvicorn stops accepting connections and lets the requests in flight finish (up to
``GRACEFUL_SECONDS``) before it exits.
"""

from __future__ import annotations

import gc
import importlib.util
import ipaddress
import logging
import sys
import warnings
from typing import Any

from llmkit.proxy.config import ProxyConfig, load_config

__all__ = ["call_log_problem", "make_server", "serve"]

logger = logging.getLogger("llmkit.proxy")

GRACEFUL_SECONDS = 30
# Keys copied from docs and examples; anyone can guess them.
WELL_KNOWN_KEYS = frozenset({"sk-1234", "sk-12345", "sk-123", "sk-test", "sk-master", "master_key", "changeme", "password"})


def serve(config_path: str, host: str = "0.0.0.0", port: int = 4000, access_log: bool = False) -> int:
    """Serve ``config_path`` until interrupted; returns the process exit status."""
    _log_to_stderr()
    config = load_config(config_path)
    for warning in risk_warnings(config, host):
        logger.warning(warning)
    problem = call_log_problem()
    if problem is not None:
        logger.error("not starting: %s", problem)
        return 2
    server = make_server(config, host, port, access_log=access_log)
    shown = f"[{host}]" if ":" in host else host
    logger.info("llmkit proxy: http://%s:%d serving %s", shown, port, ", ".join(config.model_names))
    # What start-up built (modules, pydantic schemas, the app) lives as long as the server: keep it
    # out of the garbage collector's full passes, which would otherwise walk it again and again
    # while requests wait.
    gc.collect()
    gc.freeze()
    server.run()
    return 0


def make_server(config: ProxyConfig, host: str, port: int, access_log: bool = False) -> Any:
    """A uvicorn Server for ``config`` (not started): ``.run()`` blocks, ``.should_exit`` stops it."""
    import uvicorn

    from llmkit.proxy.app import build_app

    settings = uvicorn.Config(
        build_app(config),
        host=host,
        port=port,
        loop=_best("uvloop", "asyncio"),
        http=_best("httptools", "h11"),
        lifespan="off",
        access_log=access_log,
        log_level="info" if access_log else "warning",
        timeout_graceful_shutdown=GRACEFUL_SECONDS,
        server_header=False,
    )
    return uvicorn.Server(settings)


def call_log_problem() -> str | None:
    """Why the call log cannot be written where it is configured (a server would log elsewhere)."""
    from llmkit.calllog import config as log_config

    with warnings.catch_warnings():  # said once, by the caller, as the reason not to start
        warnings.simplefilter("ignore")
        return log_config.problem()


def risk_warnings(config: ProxyConfig, host: str) -> list[str]:
    """What a person should know before exposing this server; keys are never quoted."""
    if _is_loopback(host):
        return []
    if config.master_key is None:
        return [
            f"no master_key is set and the server listens on {host}: anyone who can reach it can call"
            " your models; set general_settings.master_key (e.g. os.environ/LLMKIT_MASTER_KEY)"
        ]
    if config.master_key in WELL_KNOWN_KEYS:
        return [
            f"the master_key is a well-known example key and the server listens on {host}: anyone can"
            " guess it; set a long random key (python -c 'import secrets; print(secrets.token_urlsafe())')"
        ]
    return []


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _best(preferred: str, fallback: str) -> str:
    return preferred if importlib.util.find_spec(preferred) else fallback


def _log_to_stderr() -> None:
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
