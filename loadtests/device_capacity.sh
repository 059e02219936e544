#!/usr/bin/env bash
# The GPU table on a lent device machine (README, "Channels per device"): run there from
# the repository root with .whl carried (`make device-wheels` here first), e.g.
#   bash loadtests/device_capacity.sh "$OUT"
# That machine's image has torch, transformers and numpy for Python 3.12, and CUDA 13;
# the CTranslate2 wheel wants cuBLAS 12, so 13's libraries are aliased for this check
# (never in the product: a GPU node of the cluster installs the CUDA 12 runtime).
set -euo pipefail
out=${1:?usage: device_capacity.sh OUT_DIR}
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/ctranslate2-*.whl
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
cuda=/usr/local/cuda-13.0/targets/x86_64-linux/lib
mkdir -p /tmp/cu12
for lib in libcublas libcublasLt; do ln -sf "$cuda/$lib.so.13" "/tmp/cu12/$lib.so.12"; done
# CTranslate2 runs Whisper's convolutions with cuDNN 9: the image has it as a pip package.
cudnn=$(python3 -c "import nvidia.cudnn as c; print(list(c.__path__)[0] + '/lib')" 2>/dev/null || true)
export LD_LIBRARY_PATH=/tmp/cu12:$cuda${cudnn:+:$cudnn}:${LD_LIBRARY_PATH:-}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import ctranslate2 as c; print('CTranslate2', c.__version__, 'CUDA devices:',
    c.get_cuda_device_count(), 'types:', sorted(c.get_supported_compute_types('cuda')))"
python3 -m loadtests.decode_capacity --device cuda --shapes tiny.en,large-v3-turbo \
    --window-seconds 10,30 --batch-sizes 1,2,4,8,16,32,64,128 --out "$out" \
    2>&1 | tee "$out/decode-capacity.log"
