#!/usr/bin/env bash
# Run ON THE GPU MACHINE (the device tool), after bench/gpu_prepare.sh here. A lease has about 15 minutes in
# all, its start included, and 10 minutes a call, so each call names steps that end well inside one call:
#   run(carry=[".whl", ".gpudata"], timeout_s=590, command="bash bench/gpu_check.sh cuda bench")
#   run(carry=[".whl", ".gpudata"], timeout_s=590, command="bash bench/gpu_check.sh suite")  # its 4 parts
#   run(carry=[".whl", ".gpudata"], timeout_s=300, command="bash bench/gpu_check.sh suite-3")  # one part again
# Every call starts with a preflight (imports, a torch.compile on CUDA, NCCL). Then the steps named, in order,
# each under its own time limit so that one hang cannot eat the lease:
#   cuda     the CUDA-only tests (marked `cuda`: tests/gpu/, the one-process NCCL group), host-sync check included
#   bench    bench/gpu.py: trainctl (graphs, and eager) vs minimal vs Lightning, vs airbench94, fashionmnist_fast
#            time to accuracy (5 seeds)
#   suite-1 .. suite-4   the rest of the test suite with every CLI run on CUDA (pytest --device cuda -m "not cuda"),
#            in four parts by folder, each under a 240 s limit (whole, it passed 380 s at -n 16 on an H200);
#            `suite` runs all four
# Test steps print each test's outcome as it finishes (-v: a FAILED line names the test at once, even in a step
# later killed by its limit), limit each test (pytest-timeout, when carried) and write a JUnit XML report; the
# FAILED and ERROR lines of every step are also collected in $OUT/failures.txt.
# Logs, reports and gpu.json (written after each benchmark section) go to $OUT, or ./gpu-check-out when unset.
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
step() {  # step NAME SECONDS COMMAND...: run it, log to $out/NAME.log, note its exit code and its failures
    local name=$1 limit=$2
    shift 2
    local start=$SECONDS
    timeout --kill-after=10 "$limit" "$@" >"$out/$name.log" 2>&1
    local rc=$?
    echo "== $name: exit $rc in $((SECONDS - start)) s" | tee -a "$out/summary.txt"
    grep -E "(FAILED|ERROR) tests/|^(FAILED|ERROR) " "$out/$name.log" | sed "s/^/$name: /" | sort -u \
        | tee -a "$out/failures.txt"
    tail -n 15 "$out/$name.log"
    [ "$rc" -eq 0 ] || status=1
}

# A test that hangs is named and stopped, and its part goes on (pytest-timeout, carried in .whl by gpu_prepare.sh).
per_test=()
python3 -c "import pytest_timeout" 2>/dev/null && per_test=(--timeout=150)
tests() {  # tests NAME SECONDS PYTEST-ARGS...: one pytest step with every outcome as it happens and a report
    local name=$1 limit=$2
    shift 2
    step "$name" "$limit" python3 -m pytest -v -rfE --device cuda "${per_test[@]}" --junitxml="$out/$name.xml" "$@"
}
# The suite's parts, by folder; each ends well inside one call. Part 4 takes every folder not named in 1-3 and the
# files at the top of tests/, so nothing new is left out. (import-linter, tests/test_architecture.py, is not on the machine; CI runs it.)
suite_part() {
    local common=(-m "not cuda" -n 16 --durations=10)
    local named="callbacks|commands|components|config|data|engine|explain|gpu|__pycache__"
    case $1 in
        1) tests suite-1 240 "${common[@]}" tests/callbacks tests/commands ;;
        2) tests suite-2 240 "${common[@]}" tests/components tests/config ;;
        3) tests suite-3 240 "${common[@]}" tests/data tests/engine tests/explain ;;
        4) tests suite-4 240 "${common[@]}" $(ls -d tests/*/ | grep -Ev "^tests/($named)/$") \
               $(ls tests/test_*.py | grep -v test_architecture.py) ;;
    esac
}

for what in "$@"; do
    case $what in
        cuda)  tests cuda 240 -m cuda -n 8 --dist load --durations=15 tests ;;
        bench) step bench 300 python3 bench/gpu.py --root .gpudata/fashion --out "$out/gpu.json" ;;
        suite) for part in 1 2 3 4; do suite_part $part; done ;;
        suite-[1-4]) suite_part "${what#suite-}" ;;
        *) echo "unknown step $what: cuda, bench, suite or suite-1 .. suite-4"; exit 2 ;;
    esac
done
exit $status
