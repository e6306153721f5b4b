#!/usr/bin/env bash
# Run ON THE GPU MACHINE (the device tool), after bench/gpu_prepare.sh here. A lease has about 15 minutes in
# all, its start included, and 10 minutes a call, so two calls:
#   run(carry=[".whl", ".gpudata"], timeout_s=590, command="bash bench/gpu_check.sh cuda bench")
#   run(carry=[".whl", ".gpudata"], timeout_s=420, command="bash bench/gpu_check.sh suite")   # if time is left
# Every call starts with a preflight (imports, a torch.compile on CUDA, NCCL). Then the steps named, in order,
# each under its own time limit so that one hang cannot eat the lease:
#   cuda    the CUDA-only tests (marked `cuda`: tests/gpu/, the one-process NCCL group), host-sync check included
#   bench   bench/gpu.py: loop vs minimal vs Lightning, vs airbench94, fashionmnist_fast time to accuracy (5 seeds)
#   suite   the rest of the test suite with every CLI run on CUDA (pytest --device cuda -m "not cuda")
# Logs and gpu.json (written after each benchmark section) go to $OUT, or ./gpu-check-out when $OUT is unset.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-gpu-check-out}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
export TORCHINDUCTOR_COMPILE_THREADS=2  # 8 or 16 test processes, each compiling with a pool of its own
# Offline: tests that build a wheel (tests/test_packaging.py) get setuptools from the carried wheels.
export PIP_NO_INDEX=1 PIP_FIND_LINKS=$PWD/.whl/build

# trainctl's dependencies the image lacks, beside the image's own torch; trainctl itself from the working tree
# (editable, so `python -m trainctl`, its entry points and the Hydra plugin resolve to this checkout).
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || exit 1
export PYTHONPATH=/tmp/site
python3 -m pip install -q --no-index --find-links .whl/build --no-deps --no-cache-dir -e . >"$out/install.log" 2>&1 \
    || { cat "$out/install.log"; exit 1; }
{
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
    echo "cpus: $(nproc)"
    timeout 120 python3 - <<'EOF'
import importlib, time
import torch
print("torch", torch.__version__, "CUDA", torch.version.cuda, "cuDNN", torch.backends.cudnn.version(),
      "GPU", torch.cuda.get_device_name())
for name in ("hydra", "omegaconf", "optuna", "lightning", "airbench", "torchinfo", "torchcam", "tensorboard",
             "matplotlib", "scipy", "joblib", "safetensors", "onnx", "onnxscript", "onnxruntime", "trainctl"):
    try:
        module = importlib.import_module(name)
        print(f"  {name} {getattr(module, '__version__', '')}")
    except Exception as error:
        print(f"  {name} MISSING: {error}")
print("NCCL available:", torch.distributed.is_nccl_available())
start = time.perf_counter()
try:  # Triton builds a launcher with the C compiler and Python's headers on first use
    f = torch.compile(lambda x: torch.sin(x) * 2)
    f(torch.ones(8, device="cuda"))
    torch.cuda.synchronize()
    print(f"torch.compile on CUDA: ok in {time.perf_counter() - start:.1f} s")
except Exception as error:
    print(f"torch.compile on CUDA FAILED: {type(error).__name__}: {str(error)[:500]}")
EOF
} 2>&1 | tee "$out/machine.txt"

status=0
step() {  # step NAME SECONDS COMMAND...: run it, log to $out/NAME.log, note its exit code
    local name=$1 limit=$2
    shift 2
    local start=$SECONDS
    timeout --kill-after=10 "$limit" "$@" >"$out/$name.log" 2>&1
    local rc=$?
    echo "== $name: exit $rc in $((SECONDS - start)) s" | tee -a "$out/summary.txt"
    tail -n 30 "$out/$name.log"
    [ "$rc" -eq 0 ] || status=1
}

for what in "$@"; do
    case $what in
        cuda)  step cuda 240 python3 -m pytest -q --device cuda -m cuda -n 8 --dist load --durations=15 tests ;;
        bench) step bench 300 python3 bench/gpu.py --root .gpudata/fashion --out "$out/gpu.json" ;;
        suite) step suite 380 python3 -m pytest -q --device cuda -m "not cuda" -n 16 --durations=25 tests \
                   --ignore tests/test_architecture.py ;;  # import-linter is not on the machine; CI runs it
        *) echo "unknown step $what: cuda, bench or suite"; exit 2 ;;
    esac
done
exit $status
