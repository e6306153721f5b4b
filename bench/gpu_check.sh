#!/usr/bin/env bash
# Run ON THE GPU MACHINE (the device tool), after bench/gpu_prepare.sh here:
#   run(carry=[".whl", ".gpudata"], timeout_s=..., command="bash bench/gpu_check.sh cuda bench")
# Steps, in the order given (each under its own time limit, so one hang cannot eat the lease):
#   cuda    the CUDA-only tests (marked `cuda`: tests/gpu/, the one-process NCCL group), host-sync check included
#   bench   bench/gpu.py: loop vs minimal vs Lightning, vs airbench94, fashionmnist_fast time to accuracy (5 seeds)
#   suite   the whole test suite with every CLI run on CUDA (pytest --device cuda)
# Logs and gpu.json go to $OUT (or ./gpu-check-out when $OUT is unset); the last lines of each log are printed.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-gpu-check-out}
mkdir -p "$out"
export PYTHONUNBUFFERED=1

# trainctl's dependencies the image lacks, beside the image's own torch; trainctl itself from the working tree
# (editable, so `python -m trainctl`, its entry points and the Hydra plugin resolve to this checkout).
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || exit 1
export PYTHONPATH=/tmp/site
python3 -m pip install -q --no-index --find-links .whl/build --no-deps --no-cache-dir -e . >"$out/install.log" 2>&1 \
    || { cat "$out/install.log"; exit 1; }
{
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
    python3 -c "import torch, hydra, optuna; print('torch', torch.__version__, 'CUDA', torch.version.cuda,
                'cuDNN', torch.backends.cudnn.version(), 'hydra', hydra.__version__, 'optuna', optuna.__version__)"
    nproc
} 2>&1 | tee "$out/machine.txt"

status=0
step() {  # step NAME SECONDS COMMAND...: run it, log to $out/NAME.log, note its exit code
    local name=$1 limit=$2
    shift 2
    local start=$SECONDS
    timeout --kill-after=10 "$limit" "$@" >"$out/$name.log" 2>&1
    local rc=$?
    echo "== $name: exit $rc in $((SECONDS - start)) s" | tee -a "$out/summary.txt"
    tail -n 25 "$out/$name.log"
    [ "$rc" -eq 0 ] || status=1
}

for what in "$@"; do
    case $what in
        cuda)  step cuda 300 python3 -m pytest -q --device cuda -m cuda -n 8 --dist load --durations=15 tests ;;
        bench) step bench 420 python3 bench/gpu.py --root .gpudata/fashion --out "$out/gpu.json" ;;
        suite) step suite 420 python3 -m pytest -q --device cuda -n 16 --durations=25 tests \
                   --ignore tests/test_architecture.py ;;  # import-linter is not on the machine; CI runs it
        *) echo "unknown step $what: cuda, bench or suite"; exit 2 ;;
    esac
done
exit $status
