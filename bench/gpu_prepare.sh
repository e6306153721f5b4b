#!/usr/bin/env bash
# Run HERE, before a GPU check: gathers what the GPU machine (no network; its image has torch, torchvision,
# tensorboard, rich, lightning, pytest and pytest-xdist, but not Hydra or Optuna) needs to run trainctl from
# the working tree:
#   .whl/              wheels of trainctl's other dependencies, at the versions this checkout's .venv tests with
#                      (the machine's Python is 3.12, so binary wheels are fetched for cp312), plus airbench;
#                      .whl/build/ holds setuptools, to build trainctl's editable install there
#   .gpudata/fashion/  Fashion-MNIST's four .gz files (Debian's dataset-fashion-mnist)
# Both folders are git-ignored; the device run carries them: run(carry=[".whl", ".gpudata"],
# command="bash bench/gpu_check.sh ...").
set -euo pipefail
cd "$(dirname "$0")/.."
venv_pip=(.venv/bin/python -m pip)

# Pure-Python or binary for cp312; antlr4 4.9.3 and airbench publish only source archives, so they are built here.
# pytest-timeout: a per-test time limit in the suite's parts (gpu_check.sh), so one hung test is named and the
# part goes on.
binary=(hydra-core omegaconf optuna alembic sqlalchemy mako colorlog cmaes torchinfo torchcam hydra-joblib-launcher
        pytest-timeout)
built=(antlr4-python3-runtime airbench)

# What hydra-core 1.3 accepts, for a checkout without a .venv: the latest omegaconf (2.4) and antlr4 (4.13) are
# refused by it (`omegaconf<2.4`, `antlr4-python3-runtime==4.9.*`).
declare -A without_venv=(
    [hydra-core]="hydra-core>=1.3,<1.4"
    [omegaconf]="omegaconf>=2.2,<2.4"
    [antlr4-python3-runtime]="antlr4-python3-runtime==4.9.*"
)

pinned() {  # NAME==VERSION as this checkout's .venv has it, else the range above, else NAME (latest)
    local line
    line=$("${venv_pip[@]}" list --format=freeze 2>/dev/null | grep -i "^$1==" || true)
    echo "${line:-${without_venv[$1]:-$1}}"
}

rm -rf .whl && mkdir -p .whl .gpudata/fashion
for name in "${binary[@]}"; do
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        -d .whl "$(pinned "$name")"
done
for name in "${built[@]}"; do
    python3 -m pip wheel -q --no-deps -w .whl "$(pinned "$name")"
done
# What builds trainctl's editable install there (pyproject's build-system; the image's setuptools may be older).
python3 -m pip download -q --no-deps --only-binary=:all: -d .whl/build "setuptools>=77"
cp /usr/share/datasets/fashion-mnist/*-ubyte.gz .gpudata/fashion/
# The pins must hold together: refuse to hand the GPU machine a set that hydra-core would reject there.
ls .whl | grep -Eq '^omegaconf-2\.[23]\.' || { echo "omegaconf in .whl is not 2.2/2.3: hydra-core 1.3 needs <2.4"; exit 1; }
ls .whl | grep -Eq '^antlr4[-_]python3[-_]runtime-4\.9\.' || { echo "antlr4 in .whl is not 4.9.*: hydra-core 1.3 needs it"; exit 1; }
ls .whl
du -sh .whl .gpudata
