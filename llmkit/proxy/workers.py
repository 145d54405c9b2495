"""Several server processes on one port: ``llmkit serve --workers N``.

The supervisor (the process ``llmkit serve`` started in) binds the port, then starts N workers,
each a fresh Python process (``python -m llmkit.proxy.workers``) that loads the config, and so
imports the handlers, once for itself, and serves a socket it inherits: on Linux one of its own
(SO_REUSEPORT), the kernel spreading new connections across them; elsewhere one they all share.
All of them write the same call log.

A worker that dies is started again (at most once a second per worker). On SIGTERM or SIGINT the
supervisor sends SIGTERM to every worker, each drains as a single server does, and the supervisor
exits 0 once all have. Workers run in their own session, so a Ctrl-C in a terminal reaches only
the supervisor, which passes it on once; a worker whose supervisor is gone stops by itself.

What is per worker: each keeps its own deployments' requests-in-flight counts (least-busy
routing), round-robin turns and retries, and its own handler threads.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import subprocess
import sys
import time

__all__ = ["supervise"]

logger = logging.getLogger("llmkit.proxy")

RESTART_INTERVAL = 1.0  # seconds between two starts of the same worker, so a crash loop does not spin
CANNOT_START = 2  # a worker's exit status when its config no longer loads: starting it again cannot help


def supervise(
    config_path: str,
    sockets: list[socket.socket],
    workers: int,
    access_log: bool = False,
    graceful_seconds: float | None = None,
) -> int:
    """Run ``workers`` processes serving ``sockets`` (one each, or one for all) until a signal;
    returns the exit status. A worker started again serves its predecessor's socket, whose waiting
    connections the supervisor has kept."""
    signals: list[int] = []
    previous = {
        sig: signal.signal(sig, lambda sig, frame: signals.append(sig)) for sig in (signal.SIGINT, signal.SIGTERM)
    }
    command = [
        sys.executable,
        "-m",
        "llmkit.proxy.workers",
        "--config",
        os.path.abspath(config_path),
        "--parent",
        str(os.getpid()),
        "--workers",
        str(workers),
    ]
    if access_log:
        command.append("--access-log")
    if graceful_seconds is not None:
        command += ["--timeout-graceful-shutdown", str(graceful_seconds)]
    started: dict[int, float] = {}
    processes: dict[int, subprocess.Popen] = {}
    try:
        while not signals:
            for slot in range(workers):
                process = processes.get(slot)
                if process is not None and process.poll() is None:
                    continue
                if process is not None and process.returncode == CANNOT_START:
                    logger.error("llmkit proxy: worker %d could not start (see above); stopping", slot)
                    signals.append(signal.SIGTERM)
                    _stop([p for p in processes.values() if p is not process], signals)
                    return CANNOT_START
                if process is not None:
                    logger.warning(
                        "llmkit proxy: worker %d (pid %d) exited with status %s; starting another",
                        slot,
                        process.pid,
                        process.returncode,
                    )
                if time.monotonic() - started.get(slot, -RESTART_INTERVAL) >= RESTART_INTERVAL:
                    started[slot] = time.monotonic()
                    fd = sockets[slot % len(sockets)].fileno()
                    processes[slot] = subprocess.Popen(
                        [*command, "--fd", str(fd)], pass_fds=(fd,), start_new_session=True
                    )
                elif process is not None:
                    processes.pop(slot)
            time.sleep(0.05)
        return _stop(list(processes.values()), signals)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for sock in sockets:
            sock.close()


def _stop(processes: list[subprocess.Popen], signals: list[int]) -> int:
    """SIGTERM to every worker (again on a second signal, which stops their requests at once)."""
    forwarded = 0
    while True:
        if len(signals) > forwarded:
            forwarded = len(signals)
            for process in processes:
                if process.poll() is None:
                    process.send_signal(signal.SIGTERM)
        if all(process.poll() is not None for process in processes):
            break
        time.sleep(0.02)
    # -SIGTERM: a worker still starting, before it could serve anything (a serving one drains and exits 0)
    failed = [process for process in processes if process.returncode not in (0, -signal.SIGTERM)]
    for process in failed:
        logger.warning("llmkit proxy: worker pid %d exited with status %s", process.pid, process.returncode)
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    """One worker: serve the supervisor's socket until SIGTERM."""
    from llmkit.calllog import sqlite as sqlite_log
    from llmkit.proxy.config import ConfigError, load_config
    from llmkit.proxy.server import GRACEFUL_SECONDS, finish, log_to_stderr, make_server, run

    parser = argparse.ArgumentParser(prog="python -m llmkit.proxy.workers")
    parser.add_argument("--config", required=True)
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("--parent", type=int, required=True)
    parser.add_argument("--access-log", action="store_true")
    parser.add_argument("--timeout-graceful-shutdown", type=float, default=GRACEFUL_SECONDS)
    parser.add_argument("--workers", type=int, default=1, help="how many workers the supervisor runs")
    args = parser.parse_args(argv)
    if args.workers >= sqlite_log.cores():
        # No core to spare: the extra CPU of SQLite's JSON batches would come out of another worker.
        sqlite_log.json_batches = False
    log_to_stderr()
    sock = socket.socket(fileno=args.fd)
    host, port = sock.getsockname()[:2]
    logger.setLevel(logging.ERROR)  # the supervisor has said what there is to say about the config
    try:
        config = load_config(args.config)
    except ConfigError as exc:  # the file changed since the supervisor read it
        print(f"llmkit serve: worker: {exc}", file=sys.stderr)
        return CANNOT_START
    logger.setLevel(logging.WARNING)
    server = make_server(
        config,
        host,
        port,
        access_log=args.access_log,
        graceful_seconds=args.timeout_graceful_shutdown,
        parent=args.parent,
    )
    run(server, sock)
    return finish()


if __name__ == "__main__":
    sys.exit(main())
