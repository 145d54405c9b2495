#!/usr/bin/env bash
# Install llmkit's notebook extra and JupyterLab into ./.venv, then open JupyterLab on notebooks/.
# Every notebook there runs offline: no API key, no network. Extra arguments go to `jupyter lab`
# (for example --port=8889). Stop it with Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[lab]'
args=(--notebook-dir=notebooks --ip=127.0.0.1 --no-browser)
[ "$(id -u)" -ne 0 ] || args+=(--allow-root)  # containers often run as root
echo "JupyterLab is starting: open the http://127.0.0.1:... URL it prints below (the token is in it)."
exec .venv/bin/python -m jupyterlab "${args[@]}" "$@"
