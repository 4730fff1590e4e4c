#!/usr/bin/env bash
# Create .venv and install everything robust-glo needs, idempotently.
# torchattacks 3.5.1 pins requests~=2.25.1 (used only by its model-zoo helpers, which robust-glo never
# calls); installing it with --no-deps keeps a current `requests` for Ray and everything else.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${ROBUST_GLO_VENV:-.venv}"
PY="${PYTHON:-python3}"
STAMP="$VENV/.robust-glo-installed"
if [ -f "$STAMP" ] && [ "$STAMP" -nt pyproject.toml ] && [ "$STAMP" -nt requirements.txt ]; then
  exit 0
fi
# Fashion-MNIST from Debian, where apt-get is available (root or sudo) and the files are missing.
if [ ! -d /usr/share/datasets/fashion-mnist ] && command -v apt-get >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo -n"
  ($SUDO apt-get update -qq && $SUDO apt-get install -y -qq dataset-fashion-mnist) \
    || echo "note: could not install dataset-fashion-mnist; torchvision will download it where there is internet" >&2
fi
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q -r requirements.txt
"$VENV/bin/python" -m pip install -q --no-deps "torchattacks==3.5.1"
"$VENV/bin/python" -m pip install -q --no-deps -e .
touch "$STAMP"
