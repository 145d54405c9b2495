"""A throwaway JupyterLab server and a headless Chromium driving it, for tests of what a person sees.

The server runs this environment's Python (so its kernel is the project's), on a free loopback port,
with its own config, runtime and settings folders; it serves a copy of the notebooks. Chromium is
Debian's (``/usr/bin/chromium``), driven by Playwright's Python API: nothing is downloaded.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from ports import free_port

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "browser"  # screenshots, for a person to look at
CHROMIUM = os.environ.get("LLMKIT_TEST_CHROMIUM", "/usr/bin/chromium")
# Without the background-networking flags Chromium keeps trying to reach Google's hosts, which this
# machine's closed network refuses many times a second.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TOKEN = "llmkit-browser-test"

# JupyterLab user settings: every cell stays in the page (no windowing), and no news pop-up.
_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false"},
}


class LabServer:
    """``jupyter lab`` serving ``root`` until :meth:`stop`; its kernels inherit ``env``."""

    def __init__(self, root: Path, home: Path, env: dict[str, str]) -> None:
        self.root = root
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        settings = home / "lab-settings"
        for name, value in _SETTINGS.items():
            path = settings / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(value))
        self.log_path = home / "jupyterlab.log"
        env = {
            **os.environ,
            **env,
            "JUPYTER_CONFIG_DIR": str(home / "config"),
            "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
            "JUPYTERLAB_SETTINGS_DIR": str(settings),
            "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces"),
            "IPYTHONDIR": str(home / "ipython"),
        }
        command = [
            sys.executable,
            "-m",
            "jupyterlab",
            "--no-browser",
            "--allow-root",  # CI runs as root
            "--ip=127.0.0.1",
            f"--port={self.port}",
            f"--IdentityProvider.token={TOKEN}",
            f"--ServerApp.root_dir={root}",
            "--LabApp.news_url=",
        ]
        # A session of its own, so that stop() reaches the kernels it started too.
        self._process = subprocess.Popen(
            command, env=env, stdout=self.log_path.open("w"), stderr=subprocess.STDOUT, start_new_session=True
        )

    def wait_until_up(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"JupyterLab exited with {self._process.returncode}:\n{self.log()}")
            try:
                urllib.request.urlopen(f"{self.url}/api/status?token={TOKEN}", timeout=2).close()
                return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"JupyterLab did not answer within {timeout:.0f} s:\n{self.log()}")

    def notebook_url(self, name: str) -> str:
        # reset: start from an empty workspace, not with the notebooks an earlier test opened
        return f"{self.url}/lab/tree/{name}?reset&token={TOKEN}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGINT)  # twice: the server asks for confirmation after the first
            time.sleep(0.1)
            self._process.send_signal(signal.SIGINT)
            try:
                self._process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                pass
        try:  # whatever is left of the session (a kernel that did not go)
            os.killpg(self._process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self._process.wait(timeout=5)


def copy_notebooks(source: Path, target: Path) -> list[str]:
    target.mkdir(parents=True, exist_ok=True)
    names = sorted(path.name for path in source.glob("*.ipynb"))
    for name in names:
        shutil.copy(source / name, target / name)
    return names
