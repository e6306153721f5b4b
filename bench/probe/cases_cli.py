"""Commands and flags: unknown commands and options, abbreviations, Hydra syntax abuse, odd strings, help."""
from __future__ import annotations

from probe import Case

SMOKE = ["experiment=smoke", "trainer.epochs=1"]
COMMANDS = ["train", "eval", "list", "doctor", "summary", "explain", "predict", "export", "lr-find", "sweep-report"]
ODD = {
    "unicode": "模型",
    "emoji": "🔥",
    "newline": "a\nb",
    "cr": "a\rb",
    "tab": "a\tb",
    "nul-like": "a\\x00b",
    "semicolon": "x; touch {marker}",
    "subshell": "$(touch {marker})",
    "backtick": "`touch {marker}`",
    "pipe": "x | tee {marker}",
    "redirect": "x > {marker}",
    "dollar-brace": "${oc.env:HOME}",
    "interp-bad": "${nosuch.key}",
    "interp-env": "${oc.env:PROBE_MARKER}",
    "long": "a" * 5000,
    "very-long": "b" * 100000,
    "quote": "a'b\"c",
    "percent": "%s%n%x",
    "rtl": "\u202etxt.exe",
    "spaces": "   ",
    "dotdot": "../../../../etc/passwd",
    "abs-path": "/etc/shadow",
}


def cases() -> list[Case]:
    out: list[Case] = []
    add = out.append
    # no command, unknown commands, help of every command
    add(Case("cli-none", "cli", [], expect=(2,), msg=("usage",)))
    for name in ["trian", "resume", "TRAIN", "--version", "-x", "tra", "evaluate", "list2", "", " ", "train;ls"]:
        add(Case(f"cli-unknown-{len(out):03d}", "cli", [name], expect=(0, 2) if name == "--version" else (2,),
                 msg=(name.strip() or "unknown command", "usage")))
    add(Case("cli-resume-cmd", "cli", ["resume", "runs/x"], msg=("resume",)))
    for cmd in COMMANDS:
        add(Case(f"cli-help-{cmd}", "valid", [cmd, "--help"], expect=(0,), timeout=90))
        if cmd in ("train", "eval"):
            add(Case(f"cli-h-{cmd}", "valid", [cmd, "-h"], expect=(0,), timeout=90))
    add(Case("cli-help-top", "valid", ["--help"], expect=(0,)))
    add(Case("cli-list", "valid", ["list"], expect=(0,)))
    add(Case("cli-doctor", "valid", ["doctor"], expect=(0,), timeout=120))
    add(Case("cli-list-model-cnn", "valid", ["list", "model", "cnn"], expect=(0,)))
    add(Case("cli-list-trainer", "valid", ["list", "trainer"], expect=(0,)))
    add(Case("cli-cfg-job", "valid", ["train", "--cfg", "job", "model=lenet"], expect=(0,)))
    add(Case("cli-summary-ok", "valid", ["summary", "model=cnn", "model.channels=[8,16]"], expect=(0,), timeout=120))
    # unknown options of every command
    for cmd in COMMANDS:
        for j, opt in enumerate(["--nosuch", "-z", "nosuchopt=1", "--exp=x", "--experimental-rerun=x"]):
            if cmd in ("train", "summary", "lr-find") and opt == "nosuchopt=1":
                continue  # covered by cases_config
            culprit = opt.split("=")[0]
            # without ckpt= the first thing wrong is the missing ckpt=: naming it is clean too
            alt = ("ckpt",) if cmd in ("eval", "predict", "export", "explain") else ()
            add(Case(f"opt-{cmd}-{j}", "unknown-option", [cmd, opt], msg=(culprit, culprit.lstrip("-"), *alt),
                     timeout=90))
    for grp in ["nosuch", "model nosuch", "model cnn extra", "trainer.epochs", "--all", "model ''"]:
        add(Case(f"list-bad-{len(out):03d}", "unknown-option", ["list", *grp.split(" ")],
                 msg=(grp.split(" ")[-1].strip("'") or "list", "usage")))
    add(Case("doctor-extra", "unknown-option", ["doctor", "extra"], msg=("extra",)))
    # abbreviations of Hydra's flags and --experimental-rerun: the pickle must never load
    for flag in ["--experimental-rerun", "--experimental-re", "--exp", "--experimental", "--e"]:
        for form in ("eq", "space"):
            argv = ["train", f"{flag}={{cwd}}/payload.pickle"] if form == "eq" else ["train", flag, "{cwd}/payload.pickle"]
            add(Case(f"rerun-{flag.strip('-')}-{form}", "code-smuggle", argv, setup=plant_pickle,
                     msg=("experimental", flag.strip("-")), allow=("cwd/payload.pickle",)))
    # other Hydra flags with bad arguments
    hydra_bad = [
        (["--config-dir", "{cwd}/nosuchdir", *SMOKE], ("nosuchdir",)),
        (["-cd", "{cwd}/nosuchdir", *SMOKE], ("nosuchdir",)),
        (["--config-name", "nosuch"], ("nosuch",)),
        (["-cn", "nosuch"], ("nosuch",)),
        (["--config-path", "/nonexistent"], ("config-path", "nonexistent")),
        (["--cfg", "nosuch"], ("nosuch", "cfg")),
        (["--cfg"], ("cfg",)),
        (["--package", "nosuch", "--cfg", "job"], ("nosuch", "package")),
        (["--info", "nosuch"], ("nosuch", "info")),
        (["--resolve", "--cfg", "job", "seed=${nosuch}"], ("nosuch",)),
        (["--shell-completion"], ("shell-completion", "install", "query")),
        (["--package", "nosuch", "--info"], ("nosuch", "package")),
        # refused by design: experiment is empty by default, so ~experiment only drops a preset given on the same
        # line (the run would then train the heavy default config) or does nothing (FINDINGS.md says why)
        (["experiment=smoke", "~experiment", "--cfg", "job"], ("~experiment", "experiment=smoke")),
        (["--run", "--nosuch"], ("nosuch",)),
        (["--multirun", "--multirun", *SMOKE, "trainer.epochs=0,1"], ("trainer.epochs",)),
        (["-m", *SMOKE, "seed=range(0,20000)"], ("10,000", "10000", "jobs")),
    ]
    for k, (argv, msg) in enumerate(hydra_bad):
        expect = (0, 2) if argv[-1] in ("--info", "--shell-completion") else (2,)
        add(Case(f"hydraflag-{k:02d}", "hydra-syntax", ["train", *argv], msg=msg, timeout=90, expect=expect))
    # Hydra override grammar abuse
    grammar = ["@=1", "=1", "=", "~x", "~model", "~trainer", "~~seed", "+", "++", "+=1", "++seed",
               "a.=1", ".a=1", "a..b=1", "seed==1", "seed=1=2", "model@=mlp", "model@foo=mlp", "@model=mlp",
               "model@hydra=mlp", "seed=[", "seed={", "seed=]", "seed=${", "seed=${seed}", "seed=choice(1,2)",
               "seed=range(1,3)", "seed=interval(0,1)", "seed=tag(a,1)", "seed=glob(*)", "seed=sort(3,1)",
               "seed='unterminated", 'seed="unterminated', "seed=\\", "trainer=1", "hydra=1", "~hydra",
               "hydra/launcher=nosuch", "hydra/sweeper=nosuch", "hydra/job_logging=nosuch",
               "hydra.run.dir=/proc/self",
               "hydra.searchpath=[file://{outside}/nosuch]",
               "hydra.verbose=true", "hydra.job.env_set.PYTHONSTARTUP={outside}/x",
               "--", "-- seed=1", "seed=1 --", "-", "---", "-mm", "--m", "- m"]
    either = {"hydra.verbose=true", "hydra.job.env_set.PYTHONSTARTUP={outside}/x", "-mm",
              "hydra.searchpath=[file://{outside}/nosuch]"}
    for k, g in enumerate(grammar):
        argv = ["train", *SMOKE, *g.split(" ")] if " " in g else ["train", *SMOKE, g]
        culprit = g.split("=")[0].strip("~+@-") or g
        add(Case(f"grammar-{k:02d}", "hydra-syntax", argv, msg=(culprit, g.split(" ")[0], "override", "--"),
                 timeout=90, expect=(0, 2) if g in either else (2,)))
    # a run directory the user chose outside the working directory is theirs to choose
    add(Case("rundir-outside", "valid", ["train", *SMOKE, "hydra.run.dir={outside}/myrun"], expect=(0,),
             allow=("outside/myrun", "outside/myrun/**"), timeout=180))
    # odd strings in string-typed values, for train and eval-like commands
    for k, (name, s) in enumerate(ODD.items()):
        add(Case(f"odd-objective-{name}", "odd-string", ["train", *SMOKE, f"objective={s}"],
                 msg=("objective",), timeout=90))
        add(Case(f"odd-model-{name}", "odd-string", ["summary", f"model={s}"], msg=("model",), timeout=90))
        if k % 2 == 0:
            add(Case(f"odd-ckpt-{name}", "odd-string", ["eval", f"ckpt={s}"], msg=("ckpt", "checkpoint"),
                     timeout=90))
        else:
            add(Case(f"odd-report-{name}", "odd-string", ["sweep-report", s], msg=("sweep", "study", "storage"),
                     timeout=90))
        if k % 4 == 0:
            add(Case(f"odd-resume-{name}", "odd-string", ["train", *SMOKE, f"resume={s}"], msg=("resume", "checkpoint", "run dir"),
                     timeout=90))
            add(Case(f"odd-root-{name}", "odd-string",
                     ["train", "model=mlp", "dataset=fashionmnist", f"dataset.root={s}", "dataset.system_dirs=[]",
                      "trainer.epochs=1", "device=cpu"], msg=("dataset", "root", "found"), timeout=90))
    return out


def plant_pickle(ctx) -> None:
    """A pickle that writes the marker when unpickled (what --experimental-rerun would load)."""
    import pickle

    class Payload:
        def __reduce__(self):
            return (exec, (f"open({str(ctx.marker)!r}, 'w').write('pwned')",))

    (ctx.cwd / "payload.pickle").write_bytes(pickle.dumps(Payload()))
