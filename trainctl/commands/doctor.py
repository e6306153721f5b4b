"""`trainctl doctor`: what trainctl sees on this machine: versions, devices, and offline datasets."""

from __future__ import annotations

import platform
from importlib import metadata

from rich.markup import escape
from rich.table import Table

from trainctl.config.compose import group_options, option_defaults
from trainctl.terminal import make_console

PACKAGES = ("torch", "torchvision", "hydra-core", "omegaconf", "optuna", "tensorboard", "rich")


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def run_doctor(args: list[str]) -> int:
    if args and args[0] in ("-h", "--help"):
        print("usage: trainctl doctor\n\nPrints versions, devices and offline dataset availability.")
        return 0
    if args:
        from trainctl.errors import UserError

        raise UserError(f"trainctl doctor takes no arguments, not {' '.join(args)}")
    from trainctl import __version__
    from trainctl.data.locate import availability
    from trainctl.device import auto_device, describe_devices

    console = make_console()
    versions = Table(title="versions", title_justify="left", show_header=False)
    for name, value in [("trainctl", __version__), ("python", platform.python_version()),
                        *((p, _version(p)) for p in PACKAGES)]:
        versions.add_row(name, escape(value))
    console.print(versions)

    devices = Table(title="devices", title_justify="left", show_header=False)
    for line in describe_devices():
        devices.add_row(escape(line))
    devices.add_row(f"device=auto chooses: [bold]{auto_device()}[/]")
    console.print(devices)

    datasets = Table(title="datasets (offline, with the default dataset.root and system_dirs)", title_justify="left")
    datasets.add_column("dataset", style="bold cyan")
    datasets.add_column("status")
    for name in group_options("dataset"):
        datasets.add_row(name, escape(availability(option_defaults("dataset", name))))
    console.print(datasets)
    return 0
