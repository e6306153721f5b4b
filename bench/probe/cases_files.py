"""Files someone else made: crafted run directories and checkpoints, for every command that reads them."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import fixtures
from probe import Case

RUN = "runs/shared"


def fm_run(ctx, planted: bool = True) -> Path:
    """A copy of the tiny Fashion-MNIST run at runs/shared, its data at ./data, evil.py planted inside."""
    run = fixtures.copy_run(ctx.base["fmnist"], ctx.cwd, RUN)
    shutil.copytree(ctx.base["fmnist_data"], ctx.cwd / "data")
    if planted:
        fixtures.plant_module(run)
    return run


def with_ckpt(name: str, which: tuple[str, ...] = ("best.pt", "last.pt")):
    def setup(ctx) -> None:
        run = fm_run(ctx)
        for w in which:
            shutil.copy(ctx.base["ckpts"] / f"{name}.pt", run / "checkpoints" / w)
    return setup


def with_overrides(lines: list[str], extra=None):
    def setup(ctx) -> None:
        run = fm_run(ctx)
        body = "".join(f"- {fixtures_quote(l.format(cwd=ctx.cwd, outside=ctx.outside, marker=ctx.marker))}\n"
                       for l in lines)
        (run / ".hydra" / "overrides.yaml").write_text(body)
        (ctx.cwd / RUN / "payload.pickle").write_bytes(payload_pickle(ctx))
        evilconf(ctx)
        if extra:
            extra(ctx, run)
    return setup


def fixtures_quote(s: str) -> str:
    import json

    return json.dumps(s)


def payload_pickle(ctx) -> bytes:
    import pickle

    class P:
        def __reduce__(self):
            return (exec, (f"open({str(ctx.marker)!r}, 'w').write('pwned')",))
    return pickle.dumps(P())


def evilconf(ctx) -> None:
    """A config dir whose logging appends to outside/bashrc and whose callback writes the marker."""
    d = ctx.cwd / RUN / "conf"
    (d / "hydra" / "job_logging").mkdir(parents=True, exist_ok=True)
    (d / "hydra" / "job_logging" / "evil.yaml").write_text(
        "version: 1\nhandlers:\n  f:\n    class: logging.FileHandler\n    filename: "
        f"{ctx.outside / 'bashrc'}\n    mode: a\nroot:\n  handlers: [f]\n  level: INFO\n")
    (d / "train.yaml").write_text(
        "defaults:\n  - override hydra/job_logging: evil\nhydra:\n  callbacks:\n    x:\n      _target_: "
        "runs.shared.evil.Cb\n")


def raw_files(name: str, content):
    """Replace a file of the run dir with something odd (bytes, a symlink, a directory)."""
    def setup(ctx) -> None:
        run = fm_run(ctx)
        path = run / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        elif content == "dir":
            path.mkdir()
        elif content == "loop":
            os.symlink(path.name, path)
        elif content == "fifo":
            os.mkfifo(path)
        elif content == "missing":
            pass
        elif content.startswith("->"):
            os.symlink(content[2:].replace("{outside}", str(ctx.outside)), path)
    return setup


CKPTS = ["pickle_plain", "pickle_torch", "truncated", "truncated_tiny", "empty", "garbage", "text", "list", "tensor",
         "fmt_str", "fmt_big", "fmt_neg", "fmt_none", "fmt_list", "fmt_missing", "no_config", "config_str",
         "config_list", "no_model", "model_empty", "model_str", "model_nontensor", "model_shapes", "epoch_str",
         "epoch_neg", "epoch_huge", "history_str", "rng_empty", "optimizer_garbage", "cfg_epochs_str",
         "cfg_hidden_str", "cfg_model_unknown", "cfg_model_missing", "cfg_dataset_unknown", "cfg_extra_key",
         "cfg_target_planted", "cfg_target_os", "cfg_target_linear", "cfg_transform", "cfg_transform_os",
         "cfg_callback", "cfg_dataset_target", "cfg_root_outside", "cfg_interp", "cfg_interp_loop", "nan_weights"]
# Variants a reader may accept (the weights and config a command needs are intact): 0 or 2.
EITHER = {"fmt_missing", "fmt_none", "epoch_str", "epoch_neg", "epoch_huge", "history_str", "rng_empty",
          "optimizer_garbage", "cfg_epochs_str", "cfg_extra_key", "cfg_root_outside", "nan_weights", "cfg_callback"}
# For resume the training state matters too.
RESUME_EITHER = {"epoch_huge", "fmt_missing", "fmt_none", "cfg_extra_key", "cfg_root_outside", "cfg_callback", "nan_weights"}
# Readers that only rebuild the model ignore the training state.
EVAL_ONLY_STATE = {"epoch_str", "epoch_neg", "epoch_huge", "history_str", "rng_empty", "optimizer_garbage"}


def says_target_ignored(results, ctx) -> list[str]:
    """Accepting a file whose config names code is clean only when the command says the _target_ was not used."""
    r = results[0]
    if r["rc"] == 0 and "_target_" not in r["stdout"] + r["stderr"]:
        return ["accepted a checkpoint whose config names code without saying the _target_ was ignored"]
    return []


def npy_inputs(ctx) -> None:
    import struct

    # 3 grey 28x28 images as an IDX file (predict reads IDX)
    (ctx.cwd / "inputs.idx").write_bytes(struct.pack(">IIII", 0x803, 3, 28, 28) + bytes(3 * 784))


def cases() -> list[Case]:
    out: list[Case] = []
    add = out.append
    commands = {
        "eval": ["eval", f"ckpt={RUN}", "device=cpu"],
        "resume": ["train", f"resume={RUN}", "trainer.epochs=2"],
        "predict": ["predict", f"ckpt={RUN}", "inputs=inputs.idx", "device=cpu"],
        "export": ["export", f"ckpt={RUN}", "format=safetensors"],
        "explain": ["explain", f"ckpt={RUN}", "method=saliency", "n=2", "device=cpu"],
        "init_from": ["train", f"init_from={RUN}", "model=mlp", "model.hidden=[16]", "dataset.root=data",
                      "dataset.system_dirs=[]", "trainer.epochs=1", "device=cpu", "trainer.batch_size=16"],
        "lr-find": ["lr-find", f"init_from={RUN}", "model=mlp", "model.hidden=[16]", "dataset.root=data",
                    "dataset.system_dirs=[]", "lr_find.steps=10", "device=cpu", "trainer.batch_size=16"],
    }
    subset = {"pickle_torch", "fmt_str", "cfg_target_planted"}
    resume_subset = subset | {"truncated", "model_shapes", "epoch_str", "epoch_huge", "history_str", "rng_empty",
                              "optimizer_garbage", "cfg_dataset_target"}
    eval_skip = {"truncated_tiny", "tensor", "fmt_list", "config_list", "model_str", "epoch_neg", "epoch_huge",
                 "rng_empty", "history_str", "cfg_hidden_str", "cfg_model_missing", "cfg_interp_loop", "pickle_plain",
                 "empty", "text", "list", "fmt_neg", "no_model", "model_empty", "epoch_str", "optimizer_garbage",
                 "cfg_epochs_str", "cfg_dataset_unknown", "cfg_transform_os", "fmt_none"}
    for name in CKPTS:
        for cmd, argv in commands.items():
            if cmd == "eval" and name in eval_skip:
                continue
            if cmd == "resume" and name not in resume_subset:
                continue
            if cmd not in ("eval", "resume") and name not in subset:
                continue
            if cmd in ("init_from", "lr-find") and name.startswith(("cfg_", "fmt_")) and name not in (
                    "fmt_str", "cfg_target_planted"):
                expect = (0, 2)  # the new run's config is the command's; only the weights come along
            elif cmd == "resume":
                expect = (0, 2) if name in RESUME_EITHER else (2,)
            else:
                expect = (0, 2) if name in EITHER or name in EVAL_ONLY_STATE else (2,)
            setup = with_ckpt(name)
            if cmd == "predict":
                base_setup = setup

                def setup(ctx, _b=base_setup):
                    _b(ctx)
                    npy_inputs(ctx)
            judge = None
            if name.startswith("cfg_target") or name in ("cfg_transform", "cfg_dataset_target", "cfg_callback"):
                expect = (0, 2) if cmd in ("init_from", "lr-find") else expect
                judge = says_target_ignored
            add(Case(f"ckpt-{cmd}-{name}", "crafted-ckpt", argv, expect=expect, setup=setup, judge=judge,
                     msg=("checkpoint", "best.pt", "last.pt", "_target_", "shared", "config", "/nonexistent", "nosuch"),
                     timeout=150))
    # the same checkpoints named directly as files
    for name in ["pickle_torch", "cfg_target_planted"]:
        add(Case(f"ckptfile-eval-{name}", "crafted-ckpt", ["eval", f"ckpt={RUN}/checkpoints/best.pt", "device=cpu"],
                 setup=with_ckpt(name), msg=("best.pt", "checkpoint"), timeout=150))
    # checkpoint files that are not files
    for what in ["dir", "loop", "fifo", "->/dev/zero", "->/etc/passwd", "->{outside}"]:
        tag = what.strip("->/").replace("/", "_").replace("{", "").replace("}", "") or "x"
        for cmd in ("eval", "resume") if what in ("fifo", "->/dev/zero", "->{outside}") else ("eval",):
            add(Case(f"ckptnode-{cmd}-{tag}", "crafted-ckpt", commands[cmd],
                     setup=raw_files("checkpoints/best.pt" if cmd == "eval" else "checkpoints/last.pt", what),
                     msg=("best.pt", "last.pt", "checkpoint"), timeout=60))
    # resume: saved overrides that smuggle Hydra flags, code or paths
    smuggled = {
        "rerun-abs": ["--experimental-rerun={cwd}/runs/shared/payload.pickle"],
        "rerun-rel": ["--experimental-rerun=runs/shared/payload.pickle"],
        "rerun-prefix": ["--experimental-re=runs/shared/payload.pickle"],
        "rerun-exp": ["--exp={cwd}/runs/shared/payload.pickle"],
        "rerun-split": ["--experimental-rerun", "runs/shared/payload.pickle"],
        "config-dir": ["--config-dir={cwd}/runs/shared/conf"],
        "config-dir-short": ["-cd", "runs/shared/conf"],
        "config-name": ["--config-name=train", "--config-dir=runs/shared/conf"],
        "multirun": ["-m", "seed=1,2,3"],
        "job-logging": ["hydra/job_logging=evil", "hydra.searchpath=[file://{cwd}/runs/shared/conf]"],
        "logging-handler": ["+hydra.job_logging.handlers.f.class=logging.FileHandler",
                            "+hydra.job_logging.handlers.f.filename={outside}/bashrc"],
        "hydra-callback": ["+hydra.callbacks.x._target_=runs.shared.evil.Cb"],
        "searchpath": ["hydra.searchpath=[file://{cwd}/runs/shared/conf]"],
        "run-dir": ["hydra.run.dir={outside}/moved"],
        "model-target": ["+model._target_=runs.shared.evil.Net"],
        "model-target-os": ["+model._target_=os.system"],
        "callback-target": ["+callbacks.x._target_=runs.shared.evil.Cb"],
        "transform": ["dataset.train_transforms=[{{_target_: runs.shared.evil.transform}}]"],
        "transform-popen": ["dataset.train_transforms=[{{_target_: subprocess.Popen, args: 'touch {marker}', "
                            "shell: true}}]"],
        "formula": ["scheduler=lambda", "scheduler.formula=__import__('os').system('touch {marker}')"],
        "root-outside": ["dataset.root={outside}"],
        "init-from": ["init_from={outside}/nosuch.pt"],
        "resume-self": ["resume=runs/shared"],
        "resume-other": ["resume={outside}/other"],
        "trust": ["trust_targets=true", "+model._target_=runs.shared.evil.Net"],
        "interp-env": ["seed=${{oc.env:PROBE_MARKER}}"],
        "bad-key": ["nosuchkey=1"],
        "bad-value": ["trainer.epochs=-5"],
        "sampler": ["hydra/sweeper=optuna", "hydra.sweeper.sampler={{_target_: runs.shared.evil.Cb}}"],
        "launcher": ["hydra/launcher=joblib"],
        "output-subdir": ["hydra.output_subdir={outside}/x"],
        "env-set": ["+hydra.job.env_set.PYTHONSTARTUP={cwd}/runs/shared/evil.py"],
        "dashdash": ["--", "seed=3"],
        "long": ["seed=" + "1" * 5000],
    }
    for name, lines in smuggled.items():
        add(Case(f"resume-smuggle-{name}", "crafted-rundir", ["train", f"resume={RUN}"], expect=(0, 2),
                 setup=with_overrides(lines), msg=("overrides", "resume", "shared"), timeout=150))
    # the same smuggled overrides, for readers of the run (they take its config, not its overrides)
    for name in ["rerun-abs", "config-dir", "model-target", "transform-popen"]:
        for cmd in ("eval",) if name in ("rerun-abs", "model-target") else ():
            add(Case(f"reader-smuggle-{cmd}-{name}", "crafted-rundir", commands[cmd], expect=(0, 2),
                     setup=with_overrides(smuggled[name]), msg=("overrides", "shared", "checkpoint"), timeout=150))
    # broken run-directory files
    broken = {
        "overrides-garbage": (".hydra/overrides.yaml", b"- [unclosed\n  : : :\x00\xff"),
        "overrides-dict": (".hydra/overrides.yaml", b"a: 1\n"),
        "overrides-int": (".hydra/overrides.yaml", b"42\n"),
        "overrides-empty": (".hydra/overrides.yaml", b""),
        "overrides-nested": (".hydra/overrides.yaml", b"- [a, b]\n- {x: 1}\n"),
        "overrides-nonstr": (".hydra/overrides.yaml", b"- 1\n- null\n- true\n"),
        "overrides-pyobj": (".hydra/overrides.yaml", b"- !!python/object/apply:os.system ['touch PWNED']\n"),
        "overrides-anchor-bomb": (".hydra/overrides.yaml",
                                  b"a: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
                                  b"c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
                                  b"e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\n"
                                  b"g: [*f,*f,*f,*f,*f,*f,*f,*f,*f]\n"),
        "overrides-missing": (".hydra/overrides.yaml", "missing"),
        "overrides-dir": (".hydra/overrides.yaml", "dir"),
        "overrides-loop": (".hydra/overrides.yaml", "loop"),
        "overrides-fifo": (".hydra/overrides.yaml", "fifo"),
        "overrides-devzero": (".hydra/overrides.yaml", "->/dev/zero"),
        "overrides-passwd": (".hydra/overrides.yaml", "->/etc/passwd"),
        "config-garbage": (".hydra/config.yaml", b"{{{{ not yaml"),
        "config-types": (".hydra/config.yaml", b"trainer: {epochs: abc}\nmodel: 5\n"),
        "config-missing": (".hydra/config.yaml", "missing"),
        "hydra-garbage": (".hydra/hydra.yaml", b"\x00\x01\x02: ["),
        "hydra-configname": (".hydra/hydra.yaml", b"hydra:\n  job:\n    config_name: ../../../evil\n"),
        "hydra-types": (".hydra/hydra.yaml", b"hydra: 5\n"),
        "hydra-missing": (".hydra/hydra.yaml", "missing"),
        "dothydra-missing": (".hydra", "missing-dir"),
        "dothydra-file": (".hydra", b"not a dir"),
        "dothydra-link": (".hydra", "->{outside}"),
        "metrics-garbage": ("metrics.json", b"{not json"),
        "metrics-types": ("metrics.json", b"[1, 2, 3]"),
        "checkpoints-missing": ("checkpoints", "missing-dir"),
        "checkpoints-file": ("checkpoints", b"x"),
        "checkpoints-link-outside": ("checkpoints", "->{outside}"),
        "trainlog-dir": ("train.log", "dir"),
        "trainlog-link": ("train.log", "->{outside}/bashrc"),
    }
    for name, (path, content) in broken.items():
        setup = raw_files(path, content.replace("missing-dir", "missing") if isinstance(content, str) else content)
        if content == "missing-dir":
            def setup(ctx, _p=path):
                run = fm_run(ctx)
                shutil.rmtree(run / _p)
        add(Case(f"rundir-resume-{name}", "crafted-rundir", ["train", f"resume={RUN}", "trainer.epochs=2"],
                 expect=(0, 2) if name.startswith(("metrics", "hydra-missing", "trainlog-dir", "config-", "hydra-")) else (2,),
                 setup=setup, msg=(path.split("/")[-1], "shared"), timeout=150))
        if name.startswith(("overrides", "config", "hydra-", "dothydra", "checkpoints")) and name.endswith(("garbage", "missing", "types", "link", "file", "dict")) or \
                name in ("overrides-garbage", "config-garbage", "checkpoints-missing", "dothydra-missing"):
            if name not in ("overrides-garbage", "config-garbage", "checkpoints-missing", "dothydra-missing"):
                continue
            add(Case(f"rundir-eval-{name}", "crafted-rundir", commands["eval"],
                     expect=(2,) if name.startswith("checkpoints") else (0, 2), setup=setup,
                     msg=(path.split("/")[-1], "shared"), timeout=150))
    # resume targets that are not runs
    for k, target in enumerate(["runs/nosuch", "{outside}", "/etc/passwd", "/dev/null", "''",
                                "{cwd}/runs/shared/evil.py"]):
        add(Case(f"resume-target-{k}", "crafted-rundir", ["train", f"resume={target}"],
                 setup=lambda ctx: fm_run(ctx), msg=("resume", target.strip("'") or "resume"), timeout=90))
    # a run directory with a symlink to outside: resume must not write through it
    def link_setup(ctx):
        run = fm_run(ctx)
        os.symlink(ctx.outside, run / "steps_link")
        (run / "checkpoints" / "best.pt").unlink()
        os.symlink(ctx.outside / "bashrc", run / "checkpoints" / "best.pt")
    add(Case("rundir-resume-symlinked-best", "crafted-rundir", ["train", f"resume={RUN}", "trainer.epochs=2"],
             expect=(0, 2), setup=link_setup, msg=("best.pt",), timeout=150))
    return out
