"""A second round of cases (issue 23, probe widening), written from `--help`, `trainctl list` and the README only:
odd paths and special files for every command that reads one, crafted run directories and inputs, bad values of
every type for many keys, sweeps with bad search spaces, and signals in commands the first round left out."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import fixtures
from probe import Case

RUN = "runs/shared"
SMOKE = ["train", "experiment=smoke", "trainer.epochs=1"]
FM_ARGS = ["device=cpu"]  # the fashion run's own config names its data at ./data


def fm_run(ctx, rel: str = RUN) -> Path:
    run = fixtures.copy_run(ctx.base["fmnist"], ctx.cwd, rel)
    if not (ctx.cwd / "data").exists():
        shutil.copytree(ctx.base["fmnist_data"], ctx.cwd / "data")
    return run


def smoke_run(ctx, rel: str = RUN) -> Path:
    return fixtures.copy_run(ctx.base["smoke"], ctx.cwd, rel)


def setup_fm(mutate=None, rel: str = RUN):
    def setup(ctx) -> None:
        run = fm_run(ctx, rel)
        if mutate:
            mutate(ctx, run)
    return setup


def setup_smoke(mutate=None, rel: str = RUN):
    def setup(ctx) -> None:
        run = smoke_run(ctx, rel)
        if mutate:
            mutate(ctx, run)
    return setup


def replace(path: Path, kind: str, target: str = "") -> None:
    """Put something odd where a file or folder was: a fifo, a folder, a link, an empty file, garbage."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "dir":
        path.mkdir()
    elif kind == "link":
        os.symlink(target, path)
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "garbage":
        path.write_bytes(os.urandom(3000))
    elif kind == "text":
        path.write_text(target or "hello\n")


def npy(name: str, maker):
    """A .npy (or .pt) inputs file made by numpy/torch in the trainctl python (it has both)."""
    def setup(ctx) -> None:
        fm_run(ctx)
        import subprocess

        code = f"import numpy as np, torch, os, pickle\npath = {str(ctx.cwd / name)!r}\n{maker}\n"
        r = subprocess.run([ctx.python, "-c", code], capture_output=True, text=True, timeout=120,
                           env={**os.environ, "PROBE_MARKER": str(ctx.marker)})
        if r.returncode != 0:
            raise RuntimeError(r.stderr[-800:])
    return setup


PAYLOAD_OBJ = ("class P:\n    def __reduce__(self):\n        return (exec, (\"open(os.environ['PROBE_MARKER'], 'w')"
               ".write('pwned')\",))\n")


def path_cases() -> list[Case]:
    out: list[Case] = []
    add = out.append
    # valid runs under odd but legal names: must work (0), reading and writing only inside them
    for name, rel in {"unicode": "runs/éxp ü 漢字", "spaces": "runs/my run  two", "dash": "runs/-dash",
                      "eq": "runs/a=b", "dollar": "runs/$HOME", "brace": "runs/x{y}"}.items():
        add(Case(f"more-path-eval-{name}", "odd-path", ["eval", f"ckpt={rel}", *FM_ARGS], expect=(0,),
                 setup=setup_fm(rel=rel), timeout=180, allow=("cwd/runs/**",)))
    add(Case("more-path-predict-unicode", "odd-path",
             ["predict", "ckpt=runs/éxp ü", "inputs=data/t10k-images-idx3-ubyte", *FM_ARGS], expect=(0,),
             setup=setup_fm(rel="runs/éxp ü"), timeout=180, allow=("cwd/runs/**",)))
    # special files and folders where a checkpoint is expected
    special = {
        "fifo": (lambda c: os.mkfifo(c.cwd / "ck.pt"), "ck.pt"),
        "dir-empty": (lambda c: (c.cwd / "ck").mkdir(), "ck"),
        "devnull": (None, "/dev/null"),
        "devzero": (None, "/dev/zero"),
        "proc": (None, "/proc/self/environ"),
        "root": (None, "/"),
        "dot": (None, "."),
        "empty-file": (lambda c: (c.cwd / "ck.pt").write_bytes(b""), "ck.pt"),
        "text-file": (lambda c: (c.cwd / "ck.pt").write_text("not a checkpoint\n"), "ck.pt"),
        "zip-garbage": (lambda c: (c.cwd / "ck.pt").write_bytes(b"PK\x03\x04" + os.urandom(500)), "ck.pt"),
        "link-loop": (lambda c: os.symlink("ck.pt", c.cwd / "ck.pt"), "ck.pt"),
        "link-dangling": (lambda c: os.symlink("nowhere.pt", c.cwd / "ck.pt"), "ck.pt"),
        "newline": (None, "a\nb.pt"),
        "tilde-nosuch": (None, "~/nosuch/run"),
    }
    for cmd in ("eval", "predict", "export", "explain"):
        for name, (mk, path) in special.items():
            if cmd in ("export", "explain") and name not in ("fifo", "devzero", "link-loop", "dir-empty",
                                                              "zip-garbage"):
                continue
            if cmd == "predict" and name not in ("fifo", "devzero", "root", "text-file", "newline"):
                continue
            extra = ["inputs=x.png"] if cmd == "predict" else []

            def both(ctx, mk=mk, cmd=cmd):  # predict: a real image, so the checkpoint is what is wrong
                if cmd == "predict":
                    fixtures.write_png(ctx.cwd / "x.png")
                if mk:
                    mk(ctx)
            dev = [] if cmd == "export" else ["device=cpu"]
            add(Case(f"more-ckpt-{cmd}-{name}", "odd-path", [cmd, f"ckpt={path}", *extra, *dev],
                     setup=both, msg=("ckpt", path.split("/")[-1][:20], "checkpoint"), timeout=60))
    # the run directory itself holds something odd
    rundir = {
        "best-fifo": (lambda c, r: replace(r / "checkpoints/best.pt", "fifo")),
        "best-dir": (lambda c, r: replace(r / "checkpoints/best.pt", "dir")),
        "checkpoints-file": (lambda c, r: replace(r / "checkpoints", "text")),
        "checkpoints-link-out": (lambda c, r: (shutil.copytree(r / "checkpoints", c.outside / "ck"),
                                               replace(r / "checkpoints", "link", str(c.outside / "ck")))),
        "best-link-devzero": (lambda c, r: replace(r / "checkpoints/best.pt", "link", "/dev/zero")),
        "hydra-file": (lambda c, r: replace(r / ".hydra", "text")),
        "config-garbage": (lambda c, r: replace(r / ".hydra/config.yaml", "garbage")),
        "config-yaml-bomb": (lambda c, r: (r / ".hydra/config.yaml").write_text(
            "a: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
            "d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: [*e,*e,*e,*e,*e,*e,*e]\n")),
        "config-python-tag": (lambda c, r: (r / ".hydra/config.yaml").write_text(
            f"model: !!python/object/apply:os.system ['touch {c.marker}']\n")),
    }
    for name, mutate in rundir.items():
        for cmd in ("eval", "resume"):
            argv = (["eval", f"ckpt={RUN}", *FM_ARGS] if cmd == "eval" else
                    ["train", f"resume={RUN}", "trainer.epochs=2"])
            add(Case(f"more-rundir-{cmd}-{name}", "crafted-rundir", argv, setup=setup_fm(mutate), expect=(0, 2),
                     msg=("shared", "checkpoint", "best.pt", "config", ".hydra", "last.pt"), timeout=180,
                     allow=("cwd/runs/shared/**",) if cmd == "eval" else ()))
    # a lock file left by another process
    add(Case("more-lock-fifo", "crafted-rundir", ["train", f"resume={RUN}", "trainer.epochs=2"], expect=(0, 2),
             setup=setup_fm(lambda c, r: replace(r / ".lock", "fifo")), timeout=180, msg=("lock", "shared"),
             allow=("cwd/runs/shared/**",)))
    add(Case("more-lock-dir", "crafted-rundir", ["train", f"resume={RUN}", "trainer.epochs=2"], expect=(0, 2),
             setup=setup_fm(lambda c, r: replace(r / ".lock", "dir")), timeout=180,
             msg=("lock", "shared"), allow=("cwd/runs/shared/**",)))
    # resume= of things that are no run
    for name, target in {"dot": ".", "runs": "runs", "root": "/", "home": "~", "sweep": "copy",
                         "file": "f.txt"}.items():
        def mk(ctx, name=name):
            if name == "runs":
                (ctx.cwd / "runs").mkdir()
            if name == "sweep":
                shutil.copytree(ctx.base["smoke"], ctx.cwd / "copy" / "0", symlinks=True)
                (ctx.cwd / "copy" / "multirun.yaml").write_text("hydra: {}\n")
            if name == "file":
                (ctx.cwd / "f.txt").write_text("x")
        add(Case(f"more-resume-{name}", "crafted-rundir", ["train", f"resume={target}"], setup=mk,
                 msg=("resume", target), timeout=120))
    # init_from= a run of another model: the shapes differ
    add(Case("more-initfrom-other-model", "crafted-ckpt",
             ["train", "experiment=smoke", "trainer.epochs=1", f"init_from={RUN}"], setup=setup_fm(), expect=(2,),
             msg=("init_from", "shape", "size"), timeout=180))
    add(Case("more-initfrom-fifo", "crafted-ckpt", ["train", "experiment=smoke", "trainer.epochs=1", "init_from=p.pt"],
             setup=lambda c: os.mkfifo(c.cwd / "p.pt"), msg=("init_from", "p.pt"), timeout=60))
    # outputs: out= where nothing can be written
    outs = {
        "dir": (lambda c, r: (c.cwd / "o").mkdir(), "o"),
        "parent-is-file": (lambda c, r: (c.cwd / "f").write_text("x"), "f/out.json"),
        "nodir": (None, "nosuch/dir/out.json"),
        "devfull": (None, "/dev/full"),
        "proc": (None, "/proc/version"),
    }
    for cmd, extra in (("eval", []), ("predict", ["inputs=data/t10k-images-idx3-ubyte"]),
                       ("export", ["format=safetensors"])):
        for name, (mk, path) in outs.items():
            # out= in a folder that does not exist yet: made, as `mkdir -p` would (the user named the place)
            made = name == "nodir"
            dev = [] if cmd == "export" else FM_ARGS  # export runs on the CPU and takes no device=
            add(Case(f"more-out-{cmd}-{name}", "odd-path", [cmd, f"ckpt={RUN}", *extra, f"out={path}", *dev],
                     setup=setup_fm(mk), msg=("out", path.split("/")[0]), timeout=180,
                     expect=(0, 2) if made else (2,), allow=("cwd/nosuch", "cwd/nosuch/**") if made else ()))
    # predict inputs: odd files, crafted arrays, pickles
    inputs = {
        "fifo": (lambda c, r: os.mkfifo(c.cwd / "in.png"), "in.png", ("in.png",)),
        "devzero-link": (lambda c, r: os.symlink("/dev/zero", c.cwd / "in.png"), "in.png", ("in.png",)),
        "empty-dir": (lambda c, r: (c.cwd / "d").mkdir(), "d", ("d", "no image")),
        "text-as-png": (lambda c, r: (c.cwd / "in.png").write_text("hello"), "in.png", ("in.png",)),
        "glob-none": (None, "nothing*.png", ("nothing", "match")),
        "unicode-name": (lambda c, r: fixtures.write_png(c.cwd / "bilder" / "ü 漢.png"), "bilder", ()),
        "dir-loop": (lambda c, r: ((c.cwd / "d").mkdir(), fixtures.write_png(c.cwd / "d" / "a.png"),
                                   os.symlink("..", c.cwd / "d" / "up")), "d", ()),
        "empty-idx": (lambda c, r: (c.cwd / "x.idx").write_bytes(b""), "x.idx", ("x.idx",)),
        "txt": (lambda c, r: (c.cwd / "x.txt").write_text("1,2,3"), "x.txt", ("x.txt",)),
    }
    for name, (mk, path, msg) in inputs.items():
        expect = (0,) if name in ("unicode-name", "dir-loop") else (2,)
        add(Case(f"more-inputs-{name}", "crafted-data", ["predict", f"ckpt={RUN}", f"inputs={path}", *FM_ARGS],
                 setup=setup_fm(mk), msg=msg, expect=expect, timeout=180, allow=("cwd/runs/shared/**",)))
    arrays = {
        "npy-object-pickle": ("x.npy", PAYLOAD_OBJ + "np.save(path, np.array([P()], dtype=object), allow_pickle=True)"),
        "pt-pickle": ("x.pt", PAYLOAD_OBJ + "torch.save({'x': P()}, path)"),
        "npy-5d": ("x.npy", "np.save(path, np.zeros((1, 1, 1, 28, 28), dtype=np.float32))"),
        "npy-empty": ("x.npy", "np.save(path, np.zeros((0, 1, 28, 28), dtype=np.float32))"),
        "npy-nan": ("x.npy", "np.save(path, np.full((2, 1, 28, 28), np.nan, dtype=np.float32))"),
        "npy-strings": ("x.npy", "np.save(path, np.array(['a', 'b']))"),
        "npy-wrong-size": ("x.npy", "np.save(path, np.zeros((2, 3, 7, 5), dtype=np.float32))"),
        "npy-truncated": ("x.npy", "np.save(path, np.zeros((4, 1, 28, 28), dtype=np.float32))\n"
                                   "d = open(path, 'rb').read(); open(path, 'wb').write(d[:len(d) // 2])"),
        "npy-complex": ("x.npy", "np.save(path, np.zeros((2, 1, 28, 28), dtype=np.complex64))"),
        "pt-list": ("x.pt", "torch.save([1, 2, 3], path)"),
        "pt-huge-shape-claim": ("x.npy", "open(path, 'wb').write(b\"\\x93NUMPY\\x01\\x00v\\x00{'descr': '<f4', "
                                         "'fortran_order': False, 'shape': (100000000, 1, 28, 28), }\" + b' ' * 50 "
                                         "+ b'\\n')"),
    }
    for name, (file, maker) in arrays.items():
        add(Case(f"more-inputs-{name}", "crafted-data", ["predict", f"ckpt={RUN}", f"inputs={file}", *FM_ARGS],
                 setup=npy(file, maker), msg=(file, "inputs"),
                 expect=(0, 2) if name in ("npy-nan", "npy-wrong-size") else (2,),  # a resize is said, documented
                 timeout=180, allow=("cwd/runs/shared/**",)))
    # dataset.root odd
    for name, (mk, root) in {"fifo": (lambda c: os.mkfifo(c.cwd / "dr"), "dr"),
                             "devnull": (None, "/dev/null"),
                             "proc": (None, "/proc"),
                             "file": (lambda c: (c.cwd / "dr").write_text("x"), "dr"),
                             "unicode-missing": (None, "dätä 漢")}.items():
        add(Case(f"more-root-{name}", "odd-path", ["train", "model=mlp", "dataset=fashionmnist", f"dataset.root={root}",
                                                  "dataset.system_dirs=[]", "trainer.epochs=1", "device=cpu"],
                 setup=mk, msg=("dataset.root", root), timeout=90))
    # hydra.run.dir odd
    for name, (mk, d, expect) in {"devnull": (None, "/dev/null", (2,)),
                                  "proc": (None, "/proc/probe", (2,)),
                                  "file": (lambda c: (c.cwd / "f").write_text("x"), "f", (2,)),
                                  "under-file": (lambda c: (c.cwd / "f").write_text("x"), "f/run", (2,)),
                                  # a space needs Hydra's quotes; refused naming the fix, or taken as is
                                  "unicode": (None, "runs/ü 漢 run", (0, 2))}.items():
        add(Case(f"more-rundir-opt-{name}", "odd-path", [*SMOKE, f"hydra.run.dir={d}"], setup=mk, expect=expect,
                 msg=("hydra.run.dir", d), timeout=120))
    return out


TYPES = [
    # key=value, culprit
    ("trainer.epochs=[1,2]", "trainer.epochs"), ("trainer.epochs={a:1}", "trainer.epochs"),
    ("trainer.epochs=null", "trainer.epochs"), ("trainer.epochs=1.5", "trainer.epochs"),
    ("trainer.epochs=true", "trainer.epochs"), ("trainer.epochs=1e3", "trainer.epochs"),
    ("trainer.epochs=100001", "trainer.epochs"), ("trainer.batch_size=0", "trainer.batch_size"),
    ("trainer.batch_size=-8", "trainer.batch_size"), ("trainer.eval_batch_size=0", "trainer.eval_batch_size"),
    ("trainer.log_every_n_steps=0", "trainer.log_every_n_steps"),
    ("trainer.val_every_n_steps=-1", "trainer.val_every_n_steps"),
    ("trainer.max_steps_per_epoch=0", "trainer.max_steps_per_epoch"),
    ("trainer.overfit_batches=-2", "trainer.overfit_batches"),
    ("trainer.grad_accum_steps=0", "trainer.grad_accum_steps"),
    ("trainer.gradient_clip_val=-1", "trainer.gradient_clip_val"),
    ("trainer.gradient_clip_val=nan", "trainer.gradient_clip_val"),
    ("trainer.gradient_clip_algorithm=median", "trainer.gradient_clip_algorithm"),
    ("trainer.precision=8", "trainer.precision"), ("trainer.precision=fp64", "trainer.precision"),
    ("trainer.cuda_graphs=sometimes", "trainer.cuda_graphs"), ("trainer.sync_debug=loud", "trainer.sync_debug"),
    ("trainer.ema_decay=1.5", "trainer.ema_decay"), ("trainer.ema_decay=0", "trainer.ema_decay"),
    ("trainer.profile_steps=0", "trainer.profile_steps"), ("trainer.devices=0", "trainer.devices"),
    ("trainer.devices=1.5", "trainer.devices"), ("trainer.dist_timeout_s=-1", "trainer.dist_timeout_s"),
    ("trainer.compile=maybe", "trainer.compile"), ("trainer.deterministic=2", "trainer.deterministic"),
    ("checkpoint.monitor=val/nosuch", "val/nosuch"), ("checkpoint.mode=sideways", "checkpoint.mode"),
    ("checkpoint.every_n_steps=0", "checkpoint.every_n_steps"),
    ("early_stopping.patience=0", "early_stopping.patience"), ("early_stopping.min_delta=-1", "min_delta"),
    ("early_stopping.monitor=loss", "early_stopping.monitor"), ("early_stopping.mode=up", "early_stopping.mode"),
    ("cv.folds=0", "cv.folds"), ("cv.folds=1000000", "cv.folds"),
    ("tensorboard.num_images=0", "tensorboard.num_images"), ("tensorboard.num_images=257", "tensorboard.num_images"),
    ("tensorboard.projector_samples=0", "tensorboard.projector_samples"),
    ("tensorboard.figures_every_n_epochs=0", "tensorboard.figures_every_n_epochs"),
    ("optimizer.lr=-0.1", "optimizer.lr"), ("optimizer.lr=nan", "optimizer.lr"), ("optimizer.lr=inf", "optimizer.lr"),
    ("optimizer.lr=1e400", "optimizer.lr"), ("optimizer.lr=abc", "optimizer.lr"),
    ("optimizer.lr=[0.1]", "optimizer.lr"),
    ("optimizer.weight_decay=-1", "optimizer.weight_decay"), ("optimizer=nosuch", "nosuch"),
    ("seed=-1", "seed"), ("seed=18446744073709551616", "seed"), ("seed=1.5", "seed"),
    ("model.hidden=[]", "model.hidden"), ("model.hidden=[0]", "model.hidden"), ("model.hidden=[-4]", "model.hidden"),
    ("model.hidden=abc", "model.hidden"), ("model.hidden=[1.5]", "model.hidden"),
    ("model.dropout=1.5", "model.dropout"), ("model.dropout=-0.1", "model.dropout"),
    ("model=nosuch", "nosuch"), ("model=", "model"), ("loss=nosuch", "nosuch"), ("scheduler=nosuch", "nosuch"),
    ("device=quantum", "quantum"), ("device=cuda", "cuda"), ("device=cuda:99", "cuda"), ("device=mps", "mps"),
    ("device.index=-1", "device"), ("dataset.val_fraction=1.5", "val_fraction"),
    ("dataset.val_fraction=-0.1", "val_fraction"), ("dataset.n_train=0", "dataset.n_train"),
    ("dataset=nosuch", "nosuch"), ("objective=nosuch/metric", "nosuch/metric"), ("objective=[]", "objective"),
    ("name=../../escape", "name"), ("name=a/b", "name"), ("name=" + "n" * 300, "name"),
    ("callbacks=[1,2]", "callbacks"), ("callbacks.x=1", "callbacks"),
]


def value_cases() -> list[Case]:
    out = []
    for i, (ov, culprit) in enumerate(TYPES):
        ok = ov in ("model.hidden=[]",)  # no hidden layer: a linear model, which is valid
        out.append(Case(f"more-val-{i:03d}", "bad-value", [*SMOKE, ov], msg=(culprit, ov.split("=")[0]), timeout=90,
                        expect=(0, 2) if ok else (2,)))
    # the same keys through the commands that compose a config but do not train
    for i, (ov, culprit) in enumerate(TYPES[::6]):
        out.append(Case(f"more-val-summary-{i:02d}", "bad-value", ["summary", "experiment=smoke", ov],
                        msg=(culprit, ov.split("=")[0]), timeout=90, expect=(0, 2)))
    # eval/predict/export/explain option values
    opts = {
        "eval-split": (["eval", f"ckpt={RUN}", "split=nosuch"], ("split",)),
        "eval-split-empty": (["eval", f"ckpt={RUN}", "split="], ("split",)),
        "eval-device": (["eval", f"ckpt={RUN}", "device=tpu"], ("device", "tpu")),
        "eval-device-cuda": (["eval", f"ckpt={RUN}", "device=cuda"], ("cuda",)),
        "eval-unknown-key": (["eval", f"ckpt={RUN}", "nosuch.key=1"], ("nosuch",)),
        "eval-two-ckpt": (["eval", f"ckpt={RUN}", f"ckpt={RUN}"], ("ckpt",)),
        "eval-no-ckpt": (["eval"], ("ckpt",)),
        "eval-flag": (["eval", f"ckpt={RUN}", "--nosuch"], ("--nosuch",)),
        "eval-root-nosuch": (["eval", f"ckpt={RUN}", "dataset.root=nosuchdir", "dataset.system_dirs=[]"],
                             ("nosuchdir", "dataset.root")),
        "eval-target": (["eval", f"ckpt={RUN}", "+model._target_=os.system"], ("os.system", "_target_")),
        "predict-topk-0": (["predict", f"ckpt={RUN}", "inputs=data/t10k-images-idx3-ubyte", "topk=0"], ("topk",)),
        "predict-topk-neg": (["predict", f"ckpt={RUN}", "inputs=data/t10k-images-idx3-ubyte", "topk=-1"], ("topk",)),
        "predict-topk-abc": (["predict", f"ckpt={RUN}", "inputs=data/t10k-images-idx3-ubyte", "topk=abc"], ("topk",)),
        "predict-format": (["predict", f"ckpt={RUN}", "inputs=data/t10k-images-idx3-ubyte", "format=xml"], ("format",)),
        "predict-no-inputs": (["predict", f"ckpt={RUN}"], ("inputs",)),
        "export-format": (["export", f"ckpt={RUN}", "format=tflite"], ("format", "tflite")),
        "export-tol-neg": (["export", f"ckpt={RUN}", "format=pt2", "tolerance=-1"], ("tolerance",)),
        "export-tol-abc": (["export", f"ckpt={RUN}", "format=pt2", "tolerance=abc"], ("tolerance",)),
        "export-dtype": (["export", f"ckpt={RUN}", "format=pt2", "dtype=int8"], ("dtype",)),
        "export-preprocess": (["export", f"ckpt={RUN}", "format=pt2", "preprocess=maybe"], ("preprocess",)),
        "explain-method": (["explain", f"ckpt={RUN}", "method=nosuch"], ("method", "nosuch")),
        "explain-n0": (["explain", f"ckpt={RUN}", "method=saliency", "n=0"], ("n=",)),
        "explain-nneg": (["explain", f"ckpt={RUN}", "method=saliency", "n=-3"], ("n=",)),
        "explain-nhuge": (["explain", f"ckpt={RUN}", "method=saliency", "n=" + "9" * 30], ("n=",)),
        "explain-layer": (["explain", f"ckpt={RUN}", "method=featuremaps", "layer=nosuch"], ("layer", "nosuch")),
        "explain-class": (["explain", f"ckpt={RUN}", "method=saliency", "class=99"], ("class",)),
        "explain-class-name": (["explain", f"ckpt={RUN}", "method=saliency", "class=nosuch"], ("class", "nosuch")),
        "explain-split": (["explain", f"ckpt={RUN}", "method=saliency", "split=nosuch"], ("split",)),
        "explain-gradcam-mlp": (["explain", f"ckpt={RUN}", "method=gradcam"], ("gradcam", "conv")),
        "explain-regions-fm": (["explain", f"ckpt={RUN}", "method=regions"], ("regions",)),
    }
    for name, (argv, msg) in opts.items():
        argv = [*argv, *FM_ARGS] if not any(a.startswith("device=") for a in argv) and argv[0] != "export" else argv
        out.append(Case(f"more-opt-{name}", "bad-value", argv, setup=setup_fm(), msg=msg, timeout=180,
                        expect=(0, 2) if name in ("explain-gradcam-mlp", "eval-two-ckpt") else (2,),
                        allow=("cwd/runs/shared/**",)))
    # list and doctor
    for name, argv, expect, msg in [
        ("list-nosuch", ["list", "nosuch"], (2,), ("nosuch",)),
        ("list-model-nosuch", ["list", "model", "nosuch"], (2,), ("nosuch",)),
        ("list-extra", ["list", "model", "cnn", "extra"], (2,), ("extra",)),
        ("list-flag", ["list", "--nosuch"], (2,), ("--nosuch",)),
        ("list-path", ["list", "../../etc"], (2,), ("../../etc",)),
        ("list-trainer-key", ["list", "trainer", "epochs"], (0, 2), ("epochs",)),
        ("doctor-extra", ["doctor", "extra"], (2,), ("extra",)),
        ("doctor-flag", ["doctor", "--nosuch"], (2,), ("--nosuch",)),
        ("unknown-command-unicode", ["träin"], (2,), ("träin",)),
        ("command-case", ["TRAIN"], (2,), ("TRAIN",)),
    ]:
        out.append(Case(f"more-{name}", "cli", argv, expect=expect, msg=msg, timeout=60))
    return out


def grammar_cases() -> list[Case]:
    bad = ["model=[mlp]", "model={a:1}", "trainer=", "trainer=1", "trainer.epochs=", "'trainer.epochs=${trainer}'",
           "trainer.epochs=${oc.env:HOME}", "trainer.epochs=${oc.decode:'1'}", "seed=${oc.create:{a:1}}",
           "seed=\"1", "seed='1", "seed=1'", "trainer..epochs=1", "trainer.epochs.x=1", "+trainer.epochs=2",
           "++nosuch=1", "~trainer.epochs", "seed=1 2", "\u00a0seed=1", "seed=\u0661", "séed=1", "seed=1\x7f",
           "model@_global_=mlp", "model@pkg.x=mlp", "hydra.run.dir=", "hydra.job.chdir=true",
           "hydra.verbose=true", "hydra/job_logging=nosuch", "hydra/launcher=nosuch", "hydra.mode=MULTIRUN"]
    out = []
    for i, ov in enumerate(bad):
        expect = (0, 2) if ov in ("hydra.verbose=true", "model=[mlp]", "seed=\u0661", "hydra.mode=MULTIRUN",
                                  "hydra.job.chdir=true",
                                  "trainer.epochs=${oc.decode:'1'}") else (2,)
        key = ov.lstrip("+~").split("=")[0].split("@")[0].strip() or "override"
        out.append(Case(f"more-grammar-{i:02d}", "hydra-syntax", [*SMOKE, ov], expect=expect,
                        msg=(key, ov[:12], "override"), timeout=120))
    return out


SW = ["train", "-m", "sweep=blobs_mlp", "experiment=smoke", "trainer.epochs=1", "hydra.sweeper.n_trials=2"]


def sweep_cases() -> list[Case]:
    spaces = {
        "log-zero": ("optimizer.lr=tag(log,interval(0,0.1))", ("optimizer.lr", "log")),
        "log-neg": ("optimizer.lr=tag(log,interval(-1,0.1))", ("optimizer.lr", "log")),
        "interval-equal": ("optimizer.lr=interval(0.1,0.1)", ("optimizer.lr",)),
        "int-reversed": ("trainer.epochs=int(interval(5,1))", ("trainer.epochs",)),
        "int-out-of-range": ("trainer.epochs=int(interval(0,2))", ("trainer.epochs",)),
        "choice-empty": ("optimizer.lr=choice()", ("optimizer.lr", "choice")),
        "choice-bad-values": ("trainer.batch_size=choice(a,b)", ("trainer.batch_size",)),
        "choice-dupes": ("seed=choice(1,1,1)", ("seed",)),  # Optuna takes repeated choices: 0 or 2
        "range-huge": ("seed=range(0,100000000000)", ("seed", "range")),
        "range-zero-step": ("seed=range(0,10,0)", ("seed", "range")),
        "interval-strings": ("optimizer.lr=interval(a,b)", ("optimizer.lr", "interval")),
        "interval-nan": ("optimizer.lr=interval(nan,1)", ("optimizer.lr", "nan")),
        "interval-inf": ("optimizer.lr=interval(0,inf)", ("optimizer.lr", "inf")),
        "group-choice-bad": ("optimizer=choice(adam,nosuchopt)", ("nosuchopt",)),
        "params-bad-expr": ("hydra.sweeper.params={optimizer.lr:'interval(1'}", ("optimizer.lr",)),
        "params-unknown-key": ("hydra.sweeper.params={nosuch.key:'interval(0,1)'}", ("nosuch.key",)),
        "params-not-map": ("hydra.sweeper.params=[1,2]", ("params",)),
        "sampler-grid-continuous": ("hydra.sweeper.sampler=grid optimizer.lr=interval(0.01,0.1)",
                                    ("grid", "optimizer.lr", "interval")),
        "n_jobs-huge": ("hydra.sweeper.n_jobs=" + "9" * 25, ("n_jobs",)),
        "timeout-neg": ("hydra.sweeper.timeout=-5", ("timeout",)),
        "seed-neg": ("hydra.sweeper.seed=-1", ("seed",)),
        "study-name-empty": ("hydra.sweeper.study_name=''", ("study_name",)),
        "sweep-dir-devnull": ("hydra.sweeper.sweep_dir=/dev/null", ("sweep_dir", "/dev/null")),
        "sweep-dir-file": ("hydra.sweeper.sweep_dir=f", ("sweep_dir", "f")),
        "storage-devnull": ("hydra.sweeper.storage=sqlite:////dev/null", ("storage", "/dev/null")),
        "storage-fifo": ("hydra.sweeper.storage=sqlite:///{cwd}/p.db", ("storage", "p.db")),
        "storage-mysql": ("hydra.sweeper.storage=mysql://u:p@127.0.0.1:1/db", ("storage", "mysql")),
        "objective-unknown": ("objective=val/nosuch", ("val/nosuch",)),
        "conditional-bad": ("hydra.sweeper.conditional={optimizer.momentum:{when:{optimizer:nosuch},"
                            "values:'interval(0,1)'}}", ("conditional", "nosuch", "optimizer")),
        "depth-bad": ("hydra.sweeper.depth={model.hidden:{count:'int(interval(0,0))',width:'choice(8)'}}",
                      ("depth", "model.hidden", "count")),
    }
    out = []
    for name, (ov, msg) in spaces.items():
        def mk(ctx, name=name):
            if name == "sweep-dir-file":
                (ctx.cwd / "f").write_text("x")
            if name == "storage-fifo":
                os.mkfifo(ctx.cwd / "p.db")
        # valid after all: Optuna takes repeated choices; a huge range is sampled without being listed
        either = name in ("choice-dupes", "range-huge")
        out.append(Case(f"more-sweep-{name}", "sweep", [*SW, *ov.split(" ")], msg=msg, timeout=180, setup=mk,
                        expect=(0, 2) if either else (2,)))
    # a grid multirun (Hydra's basic sweeper) with a bad job among good ones
    out.append(Case("more-grid-one-bad", "sweep", ["train", "-m", "experiment=smoke", "trainer.epochs=1",
                                                   "trainer.batch_size=8,0"], msg=("trainer.batch_size",),
                    timeout=180))
    out.append(Case("more-grid-too-many", "sweep", ["train", "-m", "experiment=smoke", "seed=range(0,100000)"],
                    msg=("seed", "jobs"), timeout=120))
    # sweep-report option values
    for name, argv, msg in [("report-study-empty", ["sweep-report", "copy", "study="], ("study",)),
                            ("report-out-nodir", ["sweep-report", "copy", "out=nosuch/dir"], ("out", "nosuch")),
                            ("report-out-devfull", ["sweep-report", "copy", "out=/dev/full"], ("out", "/dev/full")),
                            ("report-two-targets", ["sweep-report", "copy", "copy"], ("copy",)),
                            ("report-flag", ["sweep-report", "--nosuch"], ("--nosuch",)),
                            ("report-db-fifo", ["sweep-report", "copy"], ("optuna.db", "copy")),
                            ("report-db-link-out", ["sweep-report", "copy"], ("optuna.db", "copy")),
                            ("report-results-garbage", ["sweep-report", "copy"], ("optimization_results", "copy")),
                            ("report-unicode-dir", ["sweep-report", "cöpy 漢"], ())]:
        def mk(ctx, name=name):
            target = ctx.cwd / ("cöpy 漢" if name == "report-unicode-dir" else "copy")
            shutil.copytree(ctx.base["sweep"], target)
            if name == "report-db-fifo":
                replace(target / "optuna.db", "fifo")
            if name == "report-db-link-out":
                shutil.copy(target / "optuna.db", ctx.outside / "other.db")
                replace(target / "optuna.db", "link", str(ctx.outside / "other.db"))
            if name == "report-results-garbage":
                (target / "optimization_results.yaml").write_bytes(b"\xff\xfe: [\n" + os.urandom(100))
        # out= in a folder not there yet is made (as eval's and predict's out=): the user named the place
        ok = name in ("report-unicode-dir", "report-results-garbage", "report-db-link-out", "report-out-nodir")
        out.append(Case(f"more-{name}", "sweep-report", argv, setup=mk, msg=msg, timeout=180,
                        expect=(0, 2) if ok else (2,),
                        allow=("cwd/copy/**", "cwd/cöpy 漢/**", "cwd/nosuch", "cwd/nosuch/**") if ok else ()))
    return out


def signal_cases() -> list[Case]:
    out = []
    for cmd, argv, setup, when in [
        ("summary", ["summary", "model=resnet", "dataset=cifar10"], None, None),
        ("list", ["list", "model"], None, None),
        ("predict", ["predict", f"ckpt={RUN}", "inputs=data/t10k-images-idx3-ubyte", *FM_ARGS], setup_fm(), None),
        ("explain", ["explain", f"ckpt={RUN}", "method=saliency", *FM_ARGS], setup_fm(), None),
        ("report", ["sweep-report", "copy"], lambda c: shutil.copytree(c.base["sweep"], c.cwd / "copy"), None),
        ("sweep", ["train", "-m", "sweep=blobs_mlp", "experiment=smoke", "trainer.epochs=30",
                   "hydra.sweeper.n_trials=3", "dataset.n_train=4096"], None, "runs/optuna/*/0/train.log"),
    ]:
        for sig, after in (("INT", 2.5), ("TERM", 1.0)):
            code = 130 if sig == "INT" else 143
            out.append(Case(f"more-sig-{sig}-{cmd}", "signal", argv, setup=setup, expect=(code,),
                            signal={"sig": sig, "after": after, "when": when, "max_wait": 60}, timeout=150,
                            allow=("cwd/runs/**", "cwd/copy/**")))
    out.append(Case("more-sig-INT-twice-sweep", "signal", ["train", "-m", "sweep=blobs_mlp", "experiment=smoke",
                                                          "trainer.epochs=30", "hydra.sweeper.n_trials=3",
                                                          "dataset.n_train=4096"], expect=(130,),
                    signal={"sig": "INT", "after": 1.0, "when": "runs/optuna/*/0/train.log", "twice": True,
                            "max_wait": 60}, timeout=150, allow=("cwd/runs/**",)))
    return out


def cases() -> list[Case]:
    return [*path_cases(), *value_cases(), *grammar_cases(), *sweep_cases(), *signal_cases()]
