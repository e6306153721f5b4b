"""Sweep settings, study storages and databases, and sweep-report targets."""
from __future__ import annotations

import shutil

import fixtures
from probe import Case

SW = ["train", "-m", "sweep=blobs_mlp", "experiment=smoke", "trainer.epochs=1", "hydra.sweeper.n_trials=1"]


def db(mode: str, rel: str = "study/optuna.db"):
    def setup(ctx):
        fixtures.garbage_sqlite(ctx.cwd / rel, mode)
    return setup


def copied_sweep(mutate=None):
    def setup(ctx):
        dst = ctx.cwd / "copy"
        shutil.copytree(ctx.base["sweep"], dst)
        if mutate:
            mutate(ctx, dst)
    return setup


def cases() -> list[Case]:
    out: list[Case] = []
    add = out.append
    settings = {
        "storage-nodir": ("hydra.sweeper.storage=sqlite:///{cwd}/nosuchdir/x.db", ("nosuchdir", "storage")),
        "storage-journal-nodir": ("hydra.sweeper.storage=journal:{cwd}/nosuchdir/x.journal", ("nosuchdir", "storage")),
        "storage-garbage-url": ("hydra.sweeper.storage=notaurl://x", ("storage", "notaurl")),
        "storage-pg-unreachable": ("hydra.sweeper.storage=postgresql://u:p@127.0.0.1:1/db", ("storage", "postgresql",
                                                                                             "127.0.0.1")),
        "storage-etc": ("hydra.sweeper.storage=sqlite:////etc/passwd", ("/etc/passwd", "storage")),
        "n_trials-0": ("hydra.sweeper.n_trials=0", ("n_trials",)),
        "n_trials-huge": (f"hydra.sweeper.n_trials={'9' * 80}", ("n_trials",)),
        "n_jobs-0": ("hydra.sweeper.n_jobs=0", ("n_jobs",)),
        "n_jobs-2-basic": ("hydra.sweeper.n_jobs=2", ("n_jobs", "joblib")),
        "direction-bad": ("hydra.sweeper.direction=sideways", ("sideways", "direction")),
        "direction-list1": ("objective=[val/acc,val/loss] hydra.sweeper.direction=[maximize]", ("direction",)),
        "direction-list-scalar-obj": ("hydra.sweeper.direction=[maximize,minimize]", ("direction", "objective")),
        "sampler-nosuch": ("hydra.sweeper.sampler=nosuch", ("nosuch", "sampler")),
        "pruner-nosuch": ("hydra.sweeper.pruner=nosuch", ("nosuch", "pruner")),
        "sampler-os": ("hydra.sweeper.sampler={_target_:os.system,command:'touch {marker}'}", ("os.system",)),
        "pruner-popen": ("hydra.sweeper.pruner={_target_:subprocess.Popen,args:'touch {marker}',shell:true}",
                         ("subprocess.Popen",)),
        "sampler-badarg": ("hydra.sweeper.sampler={_target_:optuna.samplers.TPESampler,nosucharg:1}", ("nosucharg",)),
        "max_failure_rate": ("hydra.sweeper.max_failure_rate=2", ("max_failure_rate",)),
        "gpus_per_trial-0": ("hydra.sweeper.gpus_per_trial=0", ("gpus_per_trial",)),
        "heartbeat-0": ("hydra.sweeper.heartbeat_interval=0", ("heartbeat_interval",)),
        "enqueue-bad": ("hydra.sweeper.enqueue_trials=[{nosuch.key:1}]", ("nosuch.key", "enqueue")),
        "study-slash": ("hydra.sweeper.study_name=../../../escape", ("study_name",)),
        "nosuch-setting": ("hydra.sweeper.nosuch=1", ("nosuch",)),
        "param-bad-grammar": ("optimizer.lr=interval(1,)", ("optimizer.lr", "interval")),
        "param-interval-rev": ("optimizer.lr=interval(1e-1,1e-4)", ("optimizer.lr", "interval")),
        "param-choice-bad": ("model=choice(mlp,nosuchmodel)", ("nosuchmodel",)),
        "param-unknown-key": ("optimizer.lrr=interval(0.1,0.2)", ("optimizer.lrr",)),
    }
    for name, (ov, msg) in settings.items():
        add(Case(f"sweep-{name}", "sweep", [*SW, *ov.split(" ")], msg=msg, timeout=150,
                 setup=None))
    add(Case("sweep-storage-garbage-db", "sweep", [*SW, "hydra.sweeper.storage=sqlite:///{cwd}/study/optuna.db"],
             setup=db("garbage"), msg=("optuna.db",), timeout=150))
    add(Case("sweep-storage-truncated-db", "sweep", [*SW, "hydra.sweeper.storage=sqlite:///{cwd}/study/optuna.db"],
             setup=db("truncated"), msg=("optuna.db",), timeout=150))
    add(Case("sweep-storage-journal-garbage", "sweep", [*SW, "hydra.sweeper.storage=journal:{cwd}/study/x.journal"],
             setup=db("garbage", "study/x.journal"), msg=("x.journal",), timeout=150))
    add(Case("sweep-dir-garbage-db", "sweep", [*SW, "hydra.sweeper.sweep_dir=study"], setup=db("garbage"),
             msg=("optuna.db",), timeout=150))
    add(Case("sweep-dry-run", "valid", [*SW, "hydra.sweeper.dry_run=true"], expect=(0,), timeout=150))
    # sweep-report
    rep = {
        "nosuch": ("nosuch", None, ("nosuch",)),
        "empty-dir": ("empty", lambda c: (c.cwd / "empty").mkdir(), ("empty",)),
        "file": ("f.txt", lambda c: (c.cwd / "f.txt").write_text("x"), ("f.txt",)),
        "db-garbage": ("study", db("garbage"), ("study", "optuna.db")),
        "db-truncated": ("study", db("truncated"), ("study", "optuna.db")),
        "db-empty": ("study", db("empty"), ("study", "optuna.db")),
        "db-other-schema": ("study", db("other_schema"), ("study", "optuna.db")),
        "db-file-garbage": ("study/optuna.db", db("garbage"), ("optuna.db",)),
        "url-nodir": ("sqlite:///{cwd}/nosuchdir/x.db", None, ("nosuchdir", "x.db")),
        "url-etc": ("sqlite:////etc/passwd", None, ("/etc/passwd",)),
        "url-journal-missing": ("journal:{cwd}/nosuch.journal", None, ("nosuch.journal",)),
        "url-journal-garbage": ("journal:{cwd}/study/x.journal", db("garbage", "study/x.journal"), ("x.journal",)),
        "url-pg-unreachable": ("postgresql://u:p@127.0.0.1:1/db", None, ("postgresql", "127.0.0.1", "storage")),
        "url-bad-scheme": ("foo://bar", None, ("foo://bar",)),
        "dir-loop": ("loop", lambda c: __import__("os").symlink("loop", c.cwd / "loop"), ("loop",)),
        "devnull": ("/dev/null", None, ("/dev/null",)),
        "no-target": ("", None, ("usage", "sweep-report")),
        "bad-opt": ("nosuch nosuchopt=1", None, ("nosuchopt", "nosuch")),
    }
    for name, (target, setup, msg) in rep.items():
        add(Case(f"report-{name}", "sweep-report", ["sweep-report", *target.split(" ")] if target else ["sweep-report"],
                 setup=setup, msg=msg, timeout=120))
    # against a real (copied) sweep directory
    add(Case("report-valid", "valid", ["sweep-report", "copy"], expect=(0,), setup=copied_sweep(), timeout=240,
             allow=("cwd/copy/**",)))
    add(Case("report-study-nosuch", "sweep-report", ["sweep-report", "copy", "study=nosuch"], setup=copied_sweep(),
             msg=("nosuch",), timeout=120))
    add(Case("report-out-devnull", "sweep-report", ["sweep-report", "copy", "out=/dev/null"], setup=copied_sweep(),
             msg=("/dev/null", "out"), timeout=120))
    add(Case("report-out-file", "sweep-report", ["sweep-report", "copy", "out=f.txt"],
             setup=copied_sweep(lambda c, d: (c.cwd / "f.txt").write_text("x")), msg=("f.txt", "out"), timeout=120))
    add(Case("report-copied-db-garbage", "sweep-report", ["sweep-report", "copy"],
             setup=copied_sweep(lambda c, d: (d / "optuna.db").write_bytes(b"garbage" * 100)),
             msg=("optuna.db",), timeout=120,
             note="a copied sweep dir whose own optuna.db is garbage must not report the study recorded elsewhere"))
    add(Case("report-copied-db-missing", "sweep-report", ["sweep-report", "copy"],
             setup=copied_sweep(lambda c, d: (d / "optuna.db").unlink()), msg=("optuna.db", "copy"), timeout=120))
    return out
