"""Device choice: `auto` takes the best accelerator present (cuda > mps > cpu); asking for an absent one fails."""

from __future__ import annotations

import threading

import torch

from trainctl.errors import UserError


def available_devices() -> list[str]:
    found = ["cpu"]
    if torch.cuda.is_available():
        found.insert(0, "cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        found.insert(1 if "cuda" in found else 0, "mps")
    return found


def auto_device() -> str:
    return available_devices()[0]


def split_index(name: str) -> tuple[str, int | None]:
    """`cuda:1` -> ("cuda", 1); `cuda` -> ("cuda", None). A malformed index is refused."""
    kind, sep, index = name.partition(":")
    if not sep:
        return name, None
    if not index.isdigit():
        raise UserError(f"device={name}: the part after ':' must be a device number, e.g. device={kind}:0")
    return kind, int(index)


def device_count(kind: str) -> int:
    if kind == "cuda":
        return torch.cuda.device_count() if torch.cuda.is_available() else 0
    return 1 if kind in available_devices() else 0


def select_device(name: str, index: int | None = None) -> torch.device:
    """The torch device for `device=<name>` (`cuda`, `cuda:1`, `mps`, `auto`, `cpu`) and `device.index`,
    checked against the devices this machine has."""
    name, from_name = split_index(name)
    if from_name is not None and index is not None and from_name != index:
        raise UserError(f"device={name}:{from_name} and device.index={index} disagree: give one of them")
    index = from_name if from_name is not None else index
    if name == "auto":
        if index is not None:
            raise UserError("device=auto picks the device itself and takes no index: use device=cuda:N")
        return torch.device(auto_device())
    if name not in available_devices():
        asked = name if index is None else f"{name}:{index}"
        raise UserError(
            f"device={asked} was asked for but no {name} device is available on this machine "
            f"(available: {', '.join(available_devices())}). Use device=auto or device=cpu."
        )
    if index is None:
        return torch.device(name)
    if name == "cpu":
        raise UserError(f"device=cpu:{index}: the CPU is one device and takes no index; use device=cpu")
    count = device_count(name)
    if index >= count:
        present = ", ".join(f"{name}:{i}" for i in range(count))
        raise UserError(f"device={name}:{index} was asked for but this machine has {count} {name} device(s) "
                        f"({present}): choose one of those")
    if name == "cuda":
        torch.cuda.set_device(index)  # kernels, graphs and the sync check act on the current device
    return torch.device(name, index)


def config_device(device_cfg) -> torch.device:
    """The device a run's `device` config group names."""
    return select_device(device_cfg.name, device_cfg.get("index"))


def describe_devices() -> list[str]:
    """Human-readable lines for `trainctl doctor`."""
    lines = ["cpu"]
    if torch.cuda.is_available():
        lines += [f"cuda:{i} {torch.cuda.get_device_name(i)}" for i in range(torch.cuda.device_count())]
    if "mps" in available_devices():
        lines.append("mps (Apple GPU)")
    return lines


def warm_up_in_background(device: torch.device) -> threading.Thread | None:
    """Start CUDA on `device` in a background thread: its context and cuDNN's libraries take a second or more
    to come up, which then overlaps with decoding the data and building the model and the callbacks instead of
    holding up the first step. A failure here is left for the main thread's first CUDA call to report. No matrix
    product: cuBLAS reads CUBLAS_WORKSPACE_CONFIG (trainer.deterministic) at the first one. Nothing on the CPU."""
    if device.type != "cuda":
        return None

    def start() -> None:
        try:
            with torch.cuda.device(device):
                x = torch.ones(1, 1, 4, 4, device=device)
                torch.nn.functional.conv2d(x, torch.ones(1, 1, 3, 3, device=device))  # loads cuDNN
                torch.cuda.synchronize(device)
        except Exception:  # noqa: BLE001 - the main thread meets the same error where it can say what to do
            pass

    thread = threading.Thread(target=start, name="trainctl-cuda-warm-up", daemon=True)
    thread.start()
    return thread
