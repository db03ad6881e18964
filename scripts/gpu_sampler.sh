#!/usr/bin/env bash
# The sampler on a GPU, as one prepared command for the device tool (issue #22): the CUDA tests
# (the GPU's images equal the CPU's, graph-replayed and plain reference, every model) and the
# sampling table on the GPU (python -m pixelcnn.bench --device cuda). About 3 minutes on an H200.
#
#   bash scripts/gpu_sampler.sh            # on the GPU machine; results in $OUT (or test-artifacts/gpu)
#   TINY=1 bash scripts/gpu_sampler.sh     # tiny models: a try, here on the CPU the tests skip
set -o pipefail
out=${OUT:-test-artifacts/gpu}
mkdir -p "$out"
py=${PYTHON:-python3}
export PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || echo "no nvidia-smi") 2>&1 | tee "$out/gpu.txt"
"$py" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())" 2>&1 | tee -a "$out/gpu.txt"
timeout 240 "$py" -m pytest -q -p no:cacheprovider -rs tests/test_sampling_exact.py -k gpu 2>&1 | tee "$out/tests.log"
tests=$?
timeout 300 "$py" -m pixelcnn.bench --device cuda --quick ${TINY:+--tiny} 2>&1 | tee "$out/bench.txt"
bench=$?
echo "tests exit $tests, bench exit $bench" | tee -a "$out/gpu.txt"
[ "$tests" = 0 ] && [ "$bench" = 0 ]
