"""Shared fixtures: tiny datasets in the real IDX format, the real CLI (in this process or a subprocess), and config
composition."""

from __future__ import annotations

import os
import shutil
import subprocess
import subprocess as subprocess_module  # `run_cli` has a parameter named subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
import torch

from inprocess import NeedsProcess, run_in_process
from trainctl.data.idx import write_idx

NO_SYSTEM_DATA = "dataset.system_dirs=[]"  # tests never read the machine's real datasets
# A user's model that reads a value back to the host every step: the GPU tests' host-sync case.
READS_BACK_MODEL = (
    "import math\nfrom torch import nn\n\n"
    "class ReadsBack(nn.Module):\n"
    "    def __init__(self, input_shape, num_classes, **mlp_settings):\n"
    "        super().__init__()\n"
    "        self.net = nn.Sequential(nn.Flatten(), nn.Linear(math.prod(input_shape), num_classes))\n\n"
    "    def forward(self, x):\n"
    "        out = self.net(x)\n"
    "        self.last_max = out.max().item()  # the host waits for the GPU here\n"
    "        return out\n")

# `pytest --device cuda` (or TRAINCTL_TEST_DEVICE=cuda): every CLI run that trains or evaluates and names no
# device runs with device=cuda, and the CUDA-only tests (marked `cuda`, in tests/gpu/) are collected. Without
# it they are deselected, not skipped: they have nothing to test on a machine without a GPU.
TEST_DEVICE = os.environ.get("TRAINCTL_TEST_DEVICE", "cpu")
DEVICE_COMMANDS = {"train", "eval", "predict", "explain", "lr-find"}  # the commands that take device=
NO_RUN_FLAGS = {"--cfg", "-c", "--help", "-h", "--hydra-help", "--info", "-i", "--shell-completion", "-sc"}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--device", choices=["cpu", "cuda"], default=TEST_DEVICE,
                     help="cuda: CLI runs train on the GPU and the CUDA-only tests run (default: "
                          "$TRAINCTL_TEST_DEVICE or cpu)")


def pytest_configure(config: pytest.Config) -> None:
    global TEST_DEVICE
    TEST_DEVICE = config.getoption("--device")
    os.environ["TRAINCTL_TEST_DEVICE"] = TEST_DEVICE  # xdist workers and subprocesses see the same choice
    # One CPU thread per process: the suite runs two workers, each starting CLI subprocesses, on CI's two cores;
    # torch's default of one thread per core would oversubscribe them and spend the time switching.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    # cuBLAS reads this once per process, at its first matrix product: in-process runs with
    # trainer.deterministic=true after others on CUDA need it set before any (trainctl's CLI sets it per run).
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    if TEST_DEVICE == "cuda" and not torch.cuda.is_available():
        raise pytest.UsageError("--device cuda: torch sees no CUDA device on this machine")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if TEST_DEVICE == "cuda":
        return
    deselected = [item for item in items if item.get_closest_marker("cuda")]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = [item for item in items if not item.get_closest_marker("cuda")]


_file_seconds: dict[str, float] = {}  # test file -> its tests' setup, call and teardown seconds, summed


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    path = report.nodeid.split("::")[0]  # under xdist the controller gets every worker's reports
    _file_seconds[path] = _file_seconds.get(path, 0.0) + report.duration


@pytest.hookimpl(trylast=True)  # after pytest's list of the slowest tests
def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """With `--durations=N`, the N slowest test files too: a file is what one xdist worker may hold, and the
    suite keeps each under a minute."""
    count = config.getoption("durations", None)
    if count is None or not _file_seconds:
        return
    slowest = sorted(_file_seconds.items(), key=lambda kv: -kv[1])[:count or None]
    terminalreporter.write_sep("=", f"slowest {len(slowest)} test files (their tests' durations summed)")
    for path, seconds in slowest:
        terminalreporter.write_line(f"{seconds:8.2f}s {path}")


def with_test_device(args: list[str]) -> list[str]:
    """`args` plus device=cuda under `--device cuda`, for a command that takes a device and names none (a resume
    replays the device its run was started with)."""
    if (TEST_DEVICE == "cpu" or not args or args[0] not in DEVICE_COMMANDS
            or any(a.startswith(("device=", "+device=", "device.", "resume=")) for a in args)
            or NO_RUN_FLAGS & set(args)):
        return args
    return [*args, f"device={TEST_DEVICE}"]


def make_idx_dataset(folder: Path, n_train: int = 600, n_test: int = 200, gz: bool = True, seed: int = 0) -> Path:
    """Write the four Fashion-MNIST files for a learnable toy task: class k lights up horizontal band k."""
    folder.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(seed)
    suffix = ".gz" if gz else ""
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = torch.arange(n, dtype=torch.uint8) % 10
        images = torch.randint(0, 60, (n, 28, 28), generator=g, dtype=torch.uint8)
        for k in range(10):
            rows = slice(2 + 2 * k, 4 + 2 * k)
            images[labels == k, rows, :] = 250
        order = torch.randperm(n, generator=g)
        write_idx(folder / f"{prefix}-images-idx3-ubyte{suffix}", images[order].contiguous())
        write_idx(folder / f"{prefix}-labels-idx1-ubyte{suffix}", labels[order].contiguous())
    return folder


@pytest.fixture(scope="session")
def fake_fashion(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A dataset.root holding small Fashion-MNIST-format files (flat, gzipped)."""
    return make_idx_dataset(tmp_path_factory.mktemp("fashion"))


def install_plugin(tmp_path_factory: pytest.TempPathFactory, module: str, source: str, group: str,
                   entry: str) -> Path:
    """Pip-install a throwaway one-module package declaring entry point `entry` in `group` into its own
    directory, and return that directory (put it on PYTHONPATH to enable the plugin)."""
    src = tmp_path_factory.mktemp(f"{module}-src")
    (src / f"{module}.py").write_text(source)
    name = entry.split("=")[0].strip()
    (src / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools>=68"]\nbuild-backend = "setuptools.build_meta"\n\n'
        f'[project]\nname = "{module.replace("_", "-")}"\nversion = "0.1"\n\n'
        f'[project.entry-points."{group}"]\n{entry}\n\n[tool.setuptools]\npy-modules = ["{module}"]\n')
    site = tmp_path_factory.mktemp(f"{module}-site")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--target", str(site), str(src)], check=True, capture_output=True)
    assert list(site.glob(f"{module}-0.1.dist-info/entry_points.txt")), f"{name} was not installed"
    return site


def run_cli(args: list[str], cwd: Path, timeout: int = 300, subprocess: bool = False,
            **env: str) -> subprocess_module.CompletedProcess:
    """Run `python -m trainctl ARGS` in `cwd` and capture its output (returncode, stdout, stderr).

    In this process by default (`tests/inprocess.py`: same argv, cwd, environment and streams, state restored
    after), since a process costs seconds of imports. A real process with `subprocess=True`, and always where a
    process is what is tested or needed: faults that kill or signal it (TRAINCTL_FAULTS), plugins on PYTHONPATH
    (an entry point found once per process), commands that start processes of their own (torchrun for
    trainer.devices=N, the joblib launcher). A PYTHONPATH in `env` goes in front of the one the tests run with
    (which may be where the dependencies are, as on the GPU machine)."""
    args = with_test_device(args)
    if not (subprocess or needs_process(args, env)):
        try:
            return run_in_process(args, cwd, {"COLUMNS": "200", **env}, timeout)
        except NeedsProcess:
            pass
    if "PYTHONPATH" in env:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [env["PYTHONPATH"], os.environ.get("PYTHONPATH")]))
    full_env = {**os.environ, "COLUMNS": "200", **env}
    return subprocess_module.run(
        [sys.executable, "-m", "trainctl", *args], cwd=cwd, env=full_env, capture_output=True, text=True,
        timeout=timeout,
    )


PROCESS_ENV = {"TRAINCTL_FAULTS", "PYTHONPATH"}  # faults kill or signal the process; plugins load once per process


def needs_process(args: list[str], env: dict[str, str]) -> bool:
    """Whether `trainctl ARGS` must run as its own process (see `run_cli`)."""
    return (bool(PROCESS_ENV & set(env)) or any(a.startswith("hydra/launcher=") for a in args)
            or threading.current_thread() is not threading.main_thread()  # runs in parallel threads: processes
            or os.environ.get("TRAINCTL_TEST_SUBPROCESS") == "1")  # every CLI run as a process (to compare)


def run_dirs(cwd: Path) -> list[Path]:
    runs = cwd / "runs"
    return sorted(p for p in runs.iterdir() if p.is_dir()) if runs.exists() else []


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One finished `trainctl train experiment=smoke trainer.epochs=1`, trained once per session (per xdist
    worker), for tests that need *a* trained run (its checkpoints, config, metrics) rather than a training of their
    own. Other tests share it: read it, or change a copy (`copy_run`)."""
    cwd = tmp_path_factory.mktemp("smoke")
    proc = run_cli(["train", "experiment=smoke", "trainer.epochs=1"], cwd)
    assert proc.returncode == 0, proc.stderr[-2000:]
    [run] = run_dirs(cwd)
    return run


def copy_run(run: Path, cwd: Path, name: str = "") -> Path:
    """A copy of the run directory `run` as `cwd/runs/<name or its own name>`, to change, resume or evaluate."""
    target = cwd / "runs" / (name or run.name)
    shutil.copytree(run, target)
    return target


def make_cifar_dataset(folder: Path, n_per_batch: int = 40, seed: int = 0) -> Path:
    """CIFAR-10's python-pickle batches (dicts of bytes keys, N x 3072 uint8 rows), small and learnable."""
    import pickle

    import numpy as np

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        labels = [i % 10 for i in range(n_per_batch)]
        images = rng.integers(0, 60, (n_per_batch, 3, 32, 32), dtype=np.uint8)
        for row, label in enumerate(labels):
            images[row, label % 3, 3 * label : 3 * label + 3, :] = 250
        batch = {b"batch_label": name.encode(), b"labels": labels, b"data": images.reshape(n_per_batch, 3072),
                 b"filenames": [f"{name}_{i}.png".encode() for i in range(n_per_batch)]}
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f, protocol=2)
    return folder


def make_image_folder(root: Path, classes: tuple[str, ...] = ("circle", "square", "stripe"), per_class: int = 8,
                      size: int = 20) -> Path:
    """<root>/{train,test}/<class>/*.png with a distinct bright region per class."""
    from PIL import Image
    import numpy as np

    for part, n in (("train", per_class), ("test", max(2, per_class // 2))):
        for k, name in enumerate(classes):
            (root / part / name).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                pixels = np.full((size, size, 3), 20 + i, dtype=np.uint8)
                pixels[:, k * size // len(classes) : (k + 1) * size // len(classes), k % 3] = 240
                Image.fromarray(pixels).save(root / part / name / f"{i}.png")
    return root


@pytest.fixture(scope="session")
def fake_cifar(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A dataset.root holding CIFAR-10 batches in torchvision's `cifar-10-batches-py/` layout."""
    root = tmp_path_factory.mktemp("cifar")
    make_cifar_dataset(root / "cifar-10-batches-py")
    return root


@pytest.fixture(scope="session")
def fake_images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_image_folder(tmp_path_factory.mktemp("images"))


def hparams_session(run_dir: Path) -> tuple[dict[str, object], str]:
    """The HParams session in `run_dir`'s own event file: (hyperparameters, status name such as
    "STATUS_SUCCESS"), as TensorBoard reads them."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import api_pb2
    from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

    events = EventAccumulator(str(run_dir), size_guidance={"tensors": 0})
    events.Reload()
    content = events.PluginTagToContent("hparams")
    start = HParamsPluginData.FromString(content["_hparams_/session_start_info"]).session_start_info
    end = HParamsPluginData.FromString(content["_hparams_/session_end_info"]).session_end_info
    params = {k: getattr(v, v.WhichOneof("kind")) for k, v in start.hparams.items()}
    return params, api_pb2.Status.Name(end.status)


def hparams_tab(logdir: Path, metrics: tuple[str, ...] = ()) -> tuple[Any, dict[str, Any]]:
    """What TensorBoard's HParams tab gets for `tensorboard --logdir logdir`, computed by its own hparams plugin:
    (the experiment: its hparam and metric columns; each session group by run name, with `metrics`' values)."""
    from tensorboard import context
    from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer
    from tensorboard.plugins import base_plugin
    from tensorboard.plugins.hparams import api_pb2, backend_context, get_experiment, list_session_groups

    multiplexer = plugin_event_multiplexer.EventMultiplexer()
    multiplexer.AddRunsFromDirectory(str(logdir))
    multiplexer.Reload()
    provider = data_provider.MultiplexerDataProvider(multiplexer, str(logdir))
    backend = backend_context.Context(base_plugin.TBContext(logdir=str(logdir), data_provider=provider,
                                                            multiplexer=multiplexer))
    request = context.RequestContext()
    experiment = get_experiment.Handler(request, backend, "", api_pb2.GetExperimentRequest()).run()
    columns = [api_pb2.ColParams(metric=api_pb2.MetricName(tag=m), include_in_result=True) for m in metrics]
    listing = api_pb2.ListSessionGroupsRequest(allowed_statuses=list(api_pb2.Status.values()), col_params=columns,
                                               start_index=0, slice_size=1000)
    groups = list_session_groups.Handler(request, backend, "", listing).run().session_groups
    return experiment, {g.name: g for g in groups}
