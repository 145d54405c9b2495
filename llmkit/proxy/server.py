"""Running the proxy: load the config, warn about risky set-ups, bind the port, serve with uvicorn.

uvloop and httptools where installed (they are in the ``proxy`` extra). The port is bound before
anything is announced, so a port in use is one clear error (exit status 2). One process by default;
``workers=N`` runs N processes on the same port (``llmkit.proxy.workers``). On SIGINT or SIGTERM the
server drains (``lifecycle``), then the call log is flushed and ``serve`` returns 0.
"""

from __future__ import annotations

import errno
import gc
import importlib.util
import ipaddress
import logging
import math
import os
import socket
import sys
import warnings
from typing import Any

from llmkit.proxy.config import ProxyConfig, load_config

__all__ = ["ServeError", "bind_socket", "call_log_problem", "listening_sockets", "make_server", "serve"]

logger = logging.getLogger("llmkit.proxy")

GRACEFUL_SECONDS = 30
READ_TIMEOUT = 30.0  # seconds for a request's headers, and again for its body, to arrive
# Keys copied from docs and examples; anyone can guess them.
WELL_KNOWN_KEYS = frozenset(
    {"sk-1234", "sk-12345", "sk-123", "sk-test", "sk-master", "master_key", "changeme", "password"}
)


class ServeError(Exception):
    """The server cannot start (the port is taken...); the message says how to fix it."""


#: Allocations between two young garbage collections in a server process (Python's default: 700).
YOUNG_COLLECTION = 10_000


def serve(
    config_path: str,
    host: str = "0.0.0.0",
    port: int = 4000,
    access_log: bool = False,
    workers: int = 1,
    graceful_seconds: float = GRACEFUL_SECONDS,
) -> int:
    """Serve ``config_path`` until interrupted; returns the process exit status.

    On SIGTERM or SIGINT, requests in flight get ``graceful_seconds`` to finish before they are stopped.
    """
    log_to_stderr()
    config = load_config(config_path)
    for warning in risk_warnings(config, host):
        logger.warning(warning)
    problem = call_log_problem()
    if problem is not None:
        logger.error("not starting: %s", problem)
        return 2
    sockets = listening_sockets(host, port, workers)
    shown = f"[{host}]" if ":" in host else host
    many = f" with {workers} workers" if workers > 1 else ""
    logger.info("llmkit proxy: http://%s:%d serving %s%s", shown, port, ", ".join(config.model_names), many)
    if workers > 1:
        from llmkit.proxy.workers import supervise

        return supervise(config_path, sockets, workers, access_log=access_log, graceful_seconds=graceful_seconds)
    run(make_server(config, host, port, access_log=access_log, graceful_seconds=graceful_seconds), sockets[0])
    return finish()


def run(server: Any, sock: socket.socket) -> None:
    """Serve on ``sock`` until a signal has drained the server."""
    # What start-up built (modules, pydantic schemas, the app) lives as long as the server: keep it
    # out of the garbage collector's full passes, which would otherwise walk it again and again
    # while requests wait.
    gc.collect()
    gc.freeze()
    # Each request's objects live until its call is logged, 10-50 ms: at the default threshold (700)
    # the collector walked them again and again and ran a full pass (~7 ms, every request waiting)
    # every few seconds. Timed with gc.callbacks under bench/proxy_log.py's load, log in SQLite: 10 us
    # of collection per request and 15 full passes per 50,000 requests; at YOUNG_COLLECTION, 4 us and one.
    gc.set_threshold(YOUNG_COLLECTION, *gc.get_threshold()[1:])
    server.run(sockets=[sock])


def finish() -> int:
    """After the server stopped: write every call to the log, and let the handler threads go."""
    import llmkit
    from llmkit import aio

    llmkit.calls.flush()
    stuck = aio.stop_handler_threads(timeout=1.0)
    if stuck:
        # A sync handler that never returns would hold the interpreter's exit forever.
        logger.warning("llmkit proxy: %d sync handler call(s) still running; exiting without them", stuck)
        llmkit.calls.flush()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    return 0


# Where the kernel spreads new connections across sockets bound to one port (SO_REUSEPORT on Linux;
# elsewhere the option exists but one socket takes them all).
_SPREADS_CONNECTIONS = sys.platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT")


def listening_sockets(host: str, port: int, workers: int) -> list[socket.socket]:
    """The sockets ``workers`` server processes serve ``host:port`` from: on Linux one each, among
    which the kernel spreads new connections; elsewhere, or for one process, one they share.

    From one shared socket, the worker that woke first took every connection of a burst and, kept
    alive, kept them: bench/proxy.py's 32 connections, opened at once, went 32 to 0 in 3 runs of 10,
    and two workers answered no more than one.
    """
    if workers == 1 or not _SPREADS_CONNECTIONS:
        return [bind_socket(host, port)]
    # A plain bind first: it fails on a port anything holds, another llmkit's SO_REUSEPORT sockets
    # included, which a second one with the option would silently share.
    probe = bind_socket(host, port, listen=False)
    port = probe.getsockname()[1]  # the port the system chose, for port 0
    probe.close()
    sockets: list[socket.socket] = []
    try:
        for _ in range(workers):
            sockets.append(bind_socket(host, port, reuse_port=True))
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def bind_socket(host: str, port: int, *, listen: bool = True, reuse_port: bool = False) -> socket.socket:
    """A socket bound to ``host:port``, listening unless ``listen=False``; ServeError naming the
    port if it is taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ServeError(
                f"port {port} on {host} is already in use (another server is listening on it); stop that"
                f" server, or choose another port with --port, e.g. --port {port + 1}"
            ) from None
        raise ServeError(f"cannot listen on {host}:{port}: {exc.strerror or exc}; check --host and --port") from None
    if listen:
        sock.listen(2048)
        sock.set_inheritable(True)  # passed to a worker process
    return sock


def make_server(
    config: ProxyConfig,
    host: str,
    port: int,
    access_log: bool = False,
    *,
    graceful_seconds: float = GRACEFUL_SECONDS,
    read_timeout: float = READ_TIMEOUT,
    request_timeout: float | None = None,
    parent: int | None = None,
) -> Any:
    """A server for ``config`` (not started): ``.run(sockets=[sock])`` blocks, ``.should_exit`` stops it.

    ``request_timeout``: seconds a request may go without progress (default: from the config).
    ``parent``: the pid of a worker's supervisor, whose exit stops the worker too.
    """
    import uvicorn

    from llmkit.proxy.app import build_app
    from llmkit.proxy.lifecycle import ProxyServer, timed_headers_protocol

    app = build_app(config, read_timeout=read_timeout, request_timeout=request_timeout)
    settings = uvicorn.Config(
        app,
        host=host,
        port=port,
        loop=_best("uvloop", "asyncio"),
        http=timed_headers_protocol() or "h11",
        lifespan="off",
        access_log=access_log,
        log_level="info" if access_log else "warning",
        timeout_graceful_shutdown=math.ceil(graceful_seconds),  # whole seconds; ProxyServer.shutdown drains itself
        server_header=False,
    )
    return ProxyServer(settings, app, graceful_seconds, read_timeout, parent=parent)


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
    if config.master_key is None and not config.keys:
        warning = (
            f"no master_key is set and the server listens on {host}: anyone who can reach it can call"
            " your models; set general_settings.master_key (e.g. os.environ/LLMKIT_MASTER_KEY)"
        )
        return [warning]
    guessable = [
        name for name, key in {"master_key": config.master_key, **config.keys}.items() if key in WELL_KNOWN_KEYS
    ]
    if guessable:
        warning = (
            f"{', '.join(guessable)}: a well-known example key, and the server listens on {host}: anyone can"
            " guess it; set a long random key (python -c 'import secrets; print(secrets.token_urlsafe())')"
        )
        return [warning]
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


def log_to_stderr() -> None:
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
