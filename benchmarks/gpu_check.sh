#!/usr/bin/env bash
# The GPU checks in one command, within about 4 minutes in all:
#
#     benchmarks/gpu_check.sh OUT_DIR
#
# runs `jaxninja check` on the GPU, the speed benchmark with --device gpu (one run and K runs in
# one program up to K = 1024), the lecture's 200,000-step run and its 8 seeds with --device gpu,
# and writes OUT_DIR/gpu_check.md (one Markdown table) and OUT_DIR/gpu_check.json.
#
# Made for a machine with its own CUDA jax (newer than ours), Python 3.12, no network and nothing
# to pip-install: jaxninja runs from this source tree (PYTHONPATH); small pure-Python packages it
# lacks (tqdm, names) travel as wheels in .gpu_carry/wheels/ and names.txt as .gpu_carry/names.txt
# (both ignored by git: copy them in before carrying the tree there). Without an NVIDIA GPU this
# prints one line and exits 0.
set -u
out=${1:?usage: benchmarks/gpu_check.sh OUT_DIR}
smi=${NVIDIA_SMI:-nvidia-smi}
if ! command -v "$smi" >/dev/null 2>&1 || ! "$smi" -L >/dev/null 2>&1; then
  echo "gpu_check: no NVIDIA GPU on this machine ($smi finds none); nothing to measure"
  exit 0
fi
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
carry="$root/.gpu_carry"
path="$root"
for wheel in "$carry"/wheels/*.whl; do
  [ -e "$wheel" ] && path="$path:$wheel"  # a pure-Python wheel imports straight from its zip
done
export PYTHONPATH="$path${PYTHONPATH:+:$PYTHONPATH}"
if [ -z "${JAXNINJA_NAMES:-}" ] && [ -f "$carry/names.txt" ]; then
  export JAXNINJA_NAMES="$carry/names.txt"
fi
unset JAX_PLATFORMS
cd "$root" && exec "${PYTHON:-python3}" -m benchmarks.gpu_check "$out"
