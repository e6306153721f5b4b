"""`trainctl` command line: subcommand dispatch with lazy imports.

`trainctl --help` must answer at once, so nothing here imports torch; each subcommand imports what it needs.
`train` hands the rest of the command line to Hydra untouched, so every Hydra flag works as in any Hydra app.
"""

from __future__ import annotations

import errno
import os
import sys
from typing import Callable

from trainctl import clock  # first: where the kernel cannot tell the process's start, this import is it
from trainctl.files import release_run_dirs

USAGE = """\
usage: trainctl <command> [args]

Config-driven training of PyTorch models (Hydra configs, TensorBoard logs under runs/).

commands:
  train [overrides]   train a model; takes every Hydra flag and override, e.g.
                        trainctl train model=cnn dataset=fashionmnist trainer.epochs=2
                        trainctl train -m optimizer.lr=1e-3,1e-2 model=mlp,cnn
                        trainctl train experiment=smoke
                        trainctl train debug=fast_dev_run  (one batch of each split)
                        trainctl train --help          (config groups and options)
  eval ckpt=PATH      metrics of a checkpoint (or run dir) on a split (split=test|val|train), also as JSON
  predict ckpt=PATH   top-k classes (or values) of new inputs: images, a folder, a glob, IDX or tensor files
                        trainctl predict ckpt=runs/<run> inputs=photos/ topk=3
  export ckpt=PATH    a file to deploy (format=onnx|pt2|safetensors), checked against PyTorch on test data
                        trainctl export ckpt=runs/<run> format=onnx
  list [GROUP [OPT]]  every option of every config group, with its description and defaults; with OPT, its keys
  doctor              versions, devices, and which datasets are available offline
  summary [overrides] print the model's layers, shapes, parameters and MACs without training
  lr-find [overrides] the learning-rate range test: suggests optimizer.lr, plots loss against lr
                        trainctl lr-find model=cnn lr_find.steps=200
  explain ckpt=PATH   what a trained image model looks at: Grad-CAM, saliency, feature maps, kernels
                        trainctl explain ckpt=runs/<run> method=gradcam n=16
  sweep-report DIR    an Optuna sweep's report: best trials, parameter importances, plots (HTML + PNGs)
                        trainctl sweep-report runs/optuna/<study>

run `trainctl <command> --help` for a command's options.
"""


def _train(args: list[str]) -> int:
    from trainctl.config.hydra_args import check_flags, check_hydra_keys
    from trainctl.config.overrides import check_group_choices, expand_device_index
    from trainctl.components.plugins import load_plugins

    check_flags(args)  # first: an abbreviated flag would slip past the checks below
    check_hydra_keys(args)
    load_plugins()  # plugin options must exist before the config is composed
    args = expand_device_index(args)
    check_group_choices(args)
    from trainctl.commands.train import run_train

    return run_train(args)


def _list(args: list[str]) -> int:
    from trainctl.commands.list import run_list
    from trainctl.components.plugins import load_plugins

    load_plugins()
    return run_list(args)


def _doctor(args: list[str]) -> int:
    from trainctl.commands.doctor import run_doctor

    return run_doctor(args)


def _summary(args: list[str]) -> int:
    from trainctl.config.hydra_args import check_flags, check_hydra_keys
    from trainctl.config.overrides import check_group_choices, expand_device_index
    from trainctl.components.plugins import load_plugins

    check_flags(args)  # the same checks as train's: these commands compose the same config
    check_hydra_keys(args)

    load_plugins()  # a plugin's model can be summarised too
    args = expand_device_index(args)
    check_group_choices(args)
    from trainctl.commands.summary import run_summary

    return run_summary(args)


def _lr_find(args: list[str]) -> int:
    from trainctl.config.hydra_args import check_flags, check_hydra_keys
    from trainctl.config.overrides import check_group_choices, expand_device_index
    from trainctl.components.plugins import load_plugins

    check_flags(args)  # the same checks as train's: these commands compose the same config
    check_hydra_keys(args)

    load_plugins()  # a plugin's model, dataset or optimizer can be tested too
    args = expand_device_index(args)
    check_group_choices(args)
    from trainctl.commands.lr_find import run_lr_find

    return run_lr_find(args)


def _eval(args: list[str]) -> int:
    from trainctl.commands.eval import run_eval

    return run_eval(args)


def _explain(args: list[str]) -> int:
    from trainctl.commands.explain import run_explain

    return run_explain(args)


def _predict(args: list[str]) -> int:
    from trainctl.commands.predict import run_predict

    return run_predict(args)


def _export(args: list[str]) -> int:
    from trainctl.commands.export import run_export

    return run_export(args)


def _sweep_report(args: list[str]) -> int:
    from trainctl.commands.sweep_report import run_sweep_report

    return run_sweep_report(args)


COMMANDS: dict[str, Callable[[list[str]], int]] = {"train": _train, "eval": _eval, "list": _list, "doctor": _doctor,
                                                   "summary": _summary, "lr-find": _lr_find, "explain": _explain,
                                                   "predict": _predict, "export": _export,
                                                   "sweep-report": _sweep_report}


def main(argv: list[str] | None = None) -> int:
    """Run one command; its exit code. Without `argv` (the console script, `python -m trainctl`) the command
    is the process: a run's clock starts with the process, and the process ends right after the command, so
    its objects are then frozen out of the cyclic garbage collector, whose final sweep over
    torch's hundreds of thousands of objects would cost about 0.4 s of CPU at exit (a quarter of `import torch`)
    and free nothing the exit does not. A caller that passes `argv` keeps its collector as it was."""
    if argv is None:
        clock.process_is_the_run()
    try:
        return _with_signals(argv)
    finally:
        release_run_dirs()  # the command is over, whoever called it: its run directories are free again
        if argv is None:
            import gc

            gc.freeze()


def _with_signals(argv: list[str] | None) -> int:
    """The command with trainctl's signal handlers: a signal at any moment exits 130/143 with one line."""
    clock.mark("python start-up")
    args = sys.argv[1:] if argv is None else list(argv)
    from trainctl.engine.signals import ignore_signals_after_atexit, install_process_handlers

    restore_handlers = install_process_handlers()  # as early as can be: a signal from here on exits 130/143
    if argv is None:  # the process's own command line
        ignore_signals_after_atexit()
    try:
        code = _main(args)
        from trainctl.engine.signals import signal_pending, signal_text

        signum = signal_pending()
        if signum is not None:  # a library swallowed the interrupt (an `except BaseException`) and went on
            print(f"stopped by {signal_text(signum)}", file=sys.stderr)
            return 128 + signum
        return code
    except KeyboardInterrupt as stop:  # a signal outside the training loop (that one reports its own stop)
        from trainctl.engine.signals import signal_text

        signum = getattr(stop, "signum", 2)
        print(f"stopped by {signal_text(signum)}; nothing half-written is left behind", file=sys.stderr)
        return 128 + signum
    except Exception:
        from trainctl.engine.signals import signal_pending, signal_text

        signum = signal_pending()
        if signum is None:
            raise
        # the signal struck inside a library's critical section, which then failed on its way out: still the stop
        print(f"stopped by {signal_text(signum)}", file=sys.stderr)
        return 128 + signum
    finally:
        if argv is None:  # the process's own command line: Python's shutdown follows
            from trainctl.engine.signals import exit_on_signals_at_shutdown

            exit_on_signals_at_shutdown()
        else:  # called from Python (tests, scripts): the caller's handlers come back
            restore_handlers()


PATH_ERRORS = {errno.ENAMETOOLONG, errno.ELOOP, errno.ENOTDIR, errno.EISDIR, errno.EACCES}


def _main(args: list[str]) -> int:
    if not args:  # no command is a usage error (as git and pip treat it): the usage, on stderr, exit 2
        print(USAGE, end="", file=sys.stderr)
        return 2
    if args[0] in ("-h", "--help", "help"):
        print(USAGE, end="")
        return 0
    if args[0] in ("--version", "-V"):
        from trainctl import __version__

        print(f"trainctl {__version__}")
        return 0
    if args[0] in ("-sc", "--shell-completion"):
        # Hydra's completion script calls `trainctl -sc query=bash` with the typed line in COMP_LINE; Hydra drops
        # the program name from it, and the `train` subcommand must go too.
        words = os.environ.get("COMP_LINE", "").split(" ")
        if any(a.startswith("query") for a in args[1:]) and len(words) <= 2:  # still typing the command
            typed = words[1] if len(words) == 2 else ""
            print(" ".join(c for c in COMMANDS if c.startswith(typed)))
            return 0
        if len(words) > 1 and words[1] == "train":
            os.environ["COMP_LINE"] = " ".join([words[0], *words[2:]])
        args = ["train", *args]
    command = COMMANDS.get(args[0])
    if command is None:
        from trainctl.registry import did_you_mean

        hint = did_you_mean(args[0], list(COMMANDS))
        print(f"error: unknown command '{args[0]}'{hint} (commands: {', '.join(COMMANDS)})", file=sys.stderr)
        return 2
    from trainctl.errors import UserError

    try:
        return command(args[1:])
    except UserError as e:
        from trainctl.commands.train import report_user_error

        report_user_error(e)
        return 2
    except OSError as e:
        if e.errno not in PATH_ERRORS or e.filename is None:
            raise
        # a path the user gave that the system cannot use (too long, a loop of links, a folder for a file)
        from trainctl.errors import report_user_error

        name = str(e.filename)
        shown = name if len(name) <= 120 else f"{name[:60]}...({len(name):,} characters)"
        report_user_error(UserError(f"trainctl {args[0]}: {shown}: {e.strerror}: give a path that exists and can "
                                    "be read"))
        return 2
