"""Signals at random moments and two processes on one run directory."""
from __future__ import annotations

import random
import shutil

import fixtures
from probe import Case

LONG = ["train", "experiment=smoke", "trainer.epochs=200", "dataset.n_train=4096"]


def fm_run(ctx):
    fixtures.copy_run(ctx.base["fmnist"], ctx.cwd, "runs/shared")
    shutil.copytree(ctx.base["fmnist_data"], ctx.cwd / "data")


def smoke_run(ctx):
    fixtures.copy_run(ctx.base["smoke"], ctx.cwd, "runs/shared")


def one_writer(results, ctx) -> list[str]:
    rcs = sorted(r["rc"] for r in results)
    reasons = []
    if rcs != [0, 2]:
        reasons.append(f"two processes on one run dir ended {rcs}, expected exactly one 0 and one 2")
    for r in results:
        if r["rc"] == 2:
            t = (r["stdout"] + r["stderr"]).lower()
            if not any(w in t for w in ("lock", "another", "process", "pid", "in use", "running")):
                reasons.append("the refused process does not say another process holds the run dir")
    return reasons


def cases() -> list[Case]:
    rng = random.Random(23)
    out: list[Case] = []
    add = out.append
    for sig, code in (("INT", 130), ("TERM", 143)):
        for k in range(2):
            t = round(rng.uniform(0.6, 3.5), 2)
            add(Case(f"sig-{sig}-startup-{k}", "signal", LONG, expect=(code,), timeout=120,
                     signal={"sig": sig, "after": t}, note=f"{sig} {t}s after start"))
        add(Case(f"sig-{sig}-midtrain-log", "signal", LONG, expect=(code,), timeout=180,
                 signal={"sig": sig, "when": "runs/*/train.log", "after": 1.0}))
        add(Case(f"sig-{sig}-midtrain-ckpt", "signal", LONG, expect=(code,), timeout=180,
                 signal={"sig": sig, "when": "runs/*/checkpoints/last.pt", "after": 0.2},
                 post=lambda ctx: last_loadable(ctx)))
        add(Case(f"sig-{sig}-resume-startup", "signal", ["train", "resume=runs/shared", "trainer.epochs=50"],
                 expect=(code,), timeout=180, setup=smoke_run, signal={"sig": sig, "after": round(rng.uniform(1, 3), 2)}))
        for k in range(1):
            t = round(rng.uniform(1.0, 6.0), 2)
            add(Case(f"sig-{sig}-eval-{k}", "signal", ["eval", "ckpt=runs/shared", "device=cpu"], expect=(code,),
                     timeout=120, setup=fm_run, signal={"sig": sig, "after": t}, note=f"{sig} {t}s after start"))
        for cmd, setup in ((["lr-find", "experiment=smoke", "lr_find.steps=2000"], None),
                           (["export", "ckpt=runs/shared", "format=safetensors"], fm_run),
                           (["doctor"], None)):
            t = round(rng.uniform(0.4, 2.5), 2)
            add(Case(f"sig-{sig}-{cmd[0]}-{cmd[-1][:8]}", "signal", cmd, expect=(code,), timeout=120, setup=setup,
                     signal={"sig": sig, "after": t}, note=f"{sig} {t}s after start"))
    add(Case("sig-INT-twice-midtrain", "signal", LONG, expect=(130,), timeout=180,
             signal={"sig": "INT", "when": "runs/*/train.log", "after": 1.0, "twice": True, "gap": 0.2}))
    add(Case("sig-INT-twice-startup", "signal", LONG, expect=(130,), timeout=120,
             signal={"sig": "INT", "after": 1.0, "twice": True, "gap": 0.1}))
    # two processes on one run directory
    same = ["train", "experiment=smoke", "trainer.epochs=3", "hydra.run.dir=runs/same"]
    add(Case("two-train-same-dir", "concurrency", [], parallel=[same, same], judge=one_writer, timeout=300))
    res = ["train", "resume=runs/shared", "trainer.epochs=4"]
    add(Case("two-resume-same-run", "concurrency", [], parallel=[res, res], judge=one_writer, setup=smoke_run,
             timeout=300))
    add(Case("train-into-existing-run", "concurrency", ["train", "experiment=smoke", "trainer.epochs=1",
                                                          "hydra.run.dir=runs/shared"], setup=smoke_run,
             msg=("runs/shared", "resume"), timeout=150, post=lambda ctx: untouched(ctx)))
    add(Case("resume-finished", "valid", ["train", "resume=runs/shared"], expect=(0,), setup=stamp(smoke_run),
             timeout=150, post=lambda ctx: untouched(ctx)))
    return out


def stamp(setup):
    def s(ctx):
        setup(ctx)
        p = ctx.cwd / "runs/shared/checkpoints/best.pt"
        (ctx.cwd / "runs/shared/.probe_best_mtime").write_text(str(p.stat().st_mtime_ns))
    return s


def untouched(ctx) -> list[str]:
    run = ctx.cwd / "runs/shared"
    best = run / "checkpoints/best.pt"
    base = ctx.base["smoke"] / "checkpoints/best.pt"
    if not best.exists() or best.read_bytes() != base.read_bytes():
        return ["the existing run's checkpoints/best.pt was changed or removed"]
    m = run / "metrics.json"
    if m.read_bytes() != (ctx.base["smoke"] / "metrics.json").read_bytes():
        return ["the existing run's metrics.json was changed"]
    return []


def last_loadable(ctx) -> list[str]:
    import subprocess

    lasts = list(ctx.cwd.glob("runs/*/checkpoints/last.pt"))
    if not lasts:
        return ["no checkpoints/last.pt after the signal"]
    r = subprocess.run([ctx.python, "-c", "import sys, torch; torch.load(sys.argv[1], weights_only=True)",
                        str(lasts[0])], capture_output=True, text=True, timeout=120)
    return [] if r.returncode == 0 else [f"last.pt does not load after the signal: {r.stderr[-200:]}"]
