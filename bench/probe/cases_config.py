"""Command-line overrides: unknown keys, wrong types, out-of-range and absurd values, odd strings, Hydra abuse."""
from __future__ import annotations

from probe import Case

SMOKE = ["experiment=smoke", "trainer.epochs=1"]
BIG = "9" * 150

# (key=value, culprit substrings) refused by every command that takes train overrides
BAD_OVERRIDES: list[tuple[str, tuple[str, ...]]] = [
    # unknown keys and options
    ("optimizer.lrr=0.1", ("optimizer.lrr",)),
    ("trainer.epoch=3", ("trainer.epoch",)),
    ("+model.foo=1", ("model.foo",)),
    ("nosuchkey=1", ("nosuchkey",)),
    ("+nosuchtop=1", ("nosuchtop",)),
    ("model=cnnn", ("cnnn",)),
    ("optimizer=adamm", ("adamm",)),
    ("scheduler=cosin", ("cosin",)),
    ("loss=crossentropy", ("crossentropy",)),
    ("dataset=fashion", ("fashion",)),
    ("device=gpu", ("gpu",)),
    ("experiment=nosuch", ("nosuch",)),
    ("debug=nosuch", ("nosuch",)),
    ("sweep=nosuch", ("nosuch",)),
    ("hparams_search=nosuch", ("nosuch",)),
    ("callbacks=nosuch", ("nosuch",)),
    ("model.hiden=[8]", ("model.hiden",)),
    ("trainer.nosuch=1", ("trainer.nosuch",)),
    ("checkpoint.nosuch=1", ("checkpoint.nosuch",)),
    ("early_stopping.patiense=1", ("patiense",)),
    ("+optimizer.momentum=0.9", ("momentum",)),
    ("+hydra.foo=1", ("hydra.foo",)),
    ("+model=mlp", ("model",)),
    ("dataset.system_dirs=[]", ("system_dirs",)),
    # wrong types
    ("trainer.epochs=abc", ("trainer.epochs",)),
    ("trainer.epochs=1.5", ("trainer.epochs",)),
    ("trainer.epochs=[1]", ("trainer.epochs",)),
    ("trainer.epochs={a:1}", ("trainer.epochs",)),
    ("trainer.epochs=true", ("trainer.epochs",)),
    ("trainer.epochs=", ("trainer.epochs",)),
    ("trainer.batch_size=abc", ("trainer.batch_size",)),
    ("trainer.batch_size=3.7", ("trainer.batch_size",)),
    ("optimizer.lr=abc", ("optimizer.lr",)),
    ("optimizer.lr=[0.1]", ("optimizer.lr",)),
    ("optimizer.lr=''", ("optimizer.lr",)),
    ("seed=abc", ("seed",)),
    ("seed=1.5", ("seed",)),
    ("model.hidden=abc", ("model.hidden",)),
    ("model.hidden=[a,b]", ("model.hidden",)),
    ("model.hidden=[1.5]", ("model.hidden",)),
    ("model.hidden={x:1}", ("model.hidden",)),
    ("model.dropout=abc", ("model.dropout",)),
    ("model.batch_norm=2", ("model.batch_norm",)),
    ("model.batch_norm=yesplease", ("model.batch_norm",)),
    ("trainer.progress=maybe", ("trainer.progress",)),
    ("trainer.precision=16", ("trainer.precision",)),
    ("trainer.precision=abc", ("trainer.precision",)),
    ("trainer.gradient_clip_algorithm=max", ("gradient_clip_algorithm",)),
    ("trainer.sync_debug=loud", ("sync_debug",)),
    ("trainer.devices=abc", ("trainer.devices",)),
    ("checkpoint.mode=up", ("checkpoint.mode",)),
    ("objective=val/accc", ("val/accc",)),
    ("objective=123", ("objective",)),
    ("objective=[val/acc,nosuch]", ("nosuch",)),
    ("early_stopping.mode=sideways", ("early_stopping.mode",)),
    ("model.activation=swishy", ("swishy",)),
    ("model.norm=weird", ("weird",)),
    ("dataset.val_fraction=abc", ("val_fraction",)),
    ("dataset.n_train=many", ("n_train",)),
    ("resume_allow_changes=2", ("resume_allow_changes",)),
    ("trust_targets=sure", ("trust_targets",)),
    ("cv.folds=two", ("cv.folds",)),
    # out of range and absurd values
    ("trainer.epochs=0", ("trainer.epochs",)),
    ("trainer.epochs=-1", ("trainer.epochs",)),
    ("trainer.epochs=100001", ("trainer.epochs",)),
    (f"trainer.epochs={BIG}", ("trainer.epochs",)),
    (f"trainer.epochs=-{BIG}", ("trainer.epochs",)),
    ("trainer.epochs=1e400", ("trainer.epochs",)),
    ("trainer.epochs=nan", ("trainer.epochs",)),
    ("trainer.batch_size=0", ("trainer.batch_size",)),
    ("trainer.batch_size=-5", ("trainer.batch_size",)),
    (f"trainer.batch_size={BIG}", ("trainer.batch_size",)),
    ("trainer.eval_batch_size=0", ("eval_batch_size",)),
    ("trainer.log_every_n_steps=0", ("log_every_n_steps",)),
    ("trainer.max_steps_per_epoch=0", ("max_steps_per_epoch",)),
    ("trainer.max_eval_batches=-1", ("max_eval_batches",)),
    ("trainer.overfit_batches=0", ("overfit_batches",)),
    ("trainer.grad_accum_steps=0", ("grad_accum_steps",)),
    ("trainer.gradient_clip_val=-1", ("gradient_clip_val",)),
    ("trainer.gradient_clip_val=nan", ("gradient_clip_val",)),
    ("trainer.gradient_clip_val=0", ("gradient_clip_val",)),
    ("trainer.ema_decay=1.5", ("ema_decay",)),
    ("trainer.ema_decay=1.0", ("ema_decay",)),
    ("trainer.ema_decay=-0.1", ("ema_decay",)),
    ("trainer.profile_steps=1000", ("profile_steps",)),
    ("trainer.devices=0", ("trainer.devices",)),
    ("trainer.dist_timeout_s=0", ("dist_timeout_s",)),
    ("optimizer.lr=-1", ("optimizer.lr",)),
    ("optimizer.lr=nan", ("optimizer.lr",)),
    ("optimizer.lr=inf", ("optimizer.lr",)),
    ("optimizer.lr=-inf", ("optimizer.lr",)),
    ("optimizer.lr=1e999", ("optimizer.lr",)),
    ("optimizer.lr=NaN", ("optimizer.lr",)),
    ("optimizer.weight_decay=-1", ("weight_decay",)),
    ("optimizer.betas=[0.9]", ("betas",)),
    ("optimizer.betas=[1.5,0.9]", ("betas",)),
    ("optimizer.eps=-1", ("eps",)),
    ("model.dropout=1.5", ("model.dropout",)),
    ("model.dropout=-0.1", ("model.dropout",)),
    ("model.dropout=nan", ("model.dropout",)),
    ("model.hidden=[0]", ("model.hidden",)),
    ("model.hidden=[-8]", ("model.hidden",)),
    (f"model.hidden=[{BIG}]", ("model.hidden",)),
    ("model.hidden=[100000,100000,100000]", ("memory", "model.hidden")),
    ("dataset.val_fraction=1.5", ("val_fraction",)),
    ("dataset.val_fraction=-0.1", ("val_fraction",)),
    ("dataset.val_fraction=1.0", ("val_fraction",)),
    ("dataset.val_fraction=nan", ("val_fraction",)),
    ("dataset.n_train=0", ("n_train",)),
    ("dataset.n_train=-1", ("n_train",)),
    ("dataset.n_train=10000000000", ("n_train",)),
    (f"dataset.n_train={BIG}", ("n_train",)),
    ("dataset.n_test=0", ("n_test",)),
    ("dataset.std=-1", ("dataset.std",)),
    ("dataset.std=nan", ("dataset.std",)),
    ("dataset.train_size=0", ("train_size",)),
    ("dataset.train_size=100000000", ("train_size",)),
    ("dataset.train_per_class=0", ("train_per_class",)),
    ("seed=-1", ("seed",)),
    (f"seed={BIG}", ("seed",)),
    ("seed=18446744073709551616", ("seed",)),
    ("cv.folds=0", ("cv.folds",)),
    ("cv.folds=-3", ("cv.folds",)),
    ("cv.folds=100000", ("cv.folds",)),
    ("early_stopping.patience=-1", ("patience",)),
    ("early_stopping.min_delta=nan", ("min_delta",)),
    ("checkpoint.every_n_steps=-1", ("every_n_steps",)),
    ("checkpoint.every_n_steps=0", ("every_n_steps",)),
    # schedules, losses
    ("scheduler=step scheduler.step_size=0", ("step_size",)),
    ("scheduler=step scheduler.gamma=-1", ("gamma",)),
    ("scheduler=exponential scheduler.gamma=nan", ("gamma",)),
    ("scheduler=multistep scheduler.milestones=abc", ("milestones",)),
    ("scheduler=cosine scheduler.t_max=0", ("t_max",)),
    ("scheduler=cosine scheduler.eta_min=-1", ("eta_min",)),
    ("scheduler=onecycle scheduler.pct_start=1.5", ("pct_start",)),
    ("scheduler=onecycle scheduler.anneal_strategy=zigzag", ("anneal_strategy",)),
    ("scheduler=cyclic scheduler.mode=sawtooth", ("sawtooth",)),
    ("scheduler=cyclic scheduler.step_size_up=0", ("step_size_up",)),
    ("scheduler=plateau scheduler.monitor=val/nosuch", ("val/nosuch",)),
    ("scheduler=plateau scheduler.patience=-1", ("patience",)),
    ("scheduler=none scheduler.warmup_steps=-1", ("warmup_steps",)),
    ("scheduler=lambda 'scheduler.formula=__import__(\"os\").system(\"touch PWN\")'", ("formula",)),
    ("scheduler=lambda 'scheduler.formula=epoch ** 99999999999'", ("formula",)),
    ("scheduler=lambda 'scheduler.formula=9 ** 9 ** 9 ** 9'", ("formula",)),
    ("scheduler=lambda 'scheduler.formula=().__class__.__bases__'", ("formula",)),
    ("scheduler=lambda 'scheduler.formula=open(\"x\",\"w\")'", ("formula",)),
    ("scheduler=lambda 'scheduler.formula=lambda: 1'", ("formula",)),
    ("scheduler=lambda 'scheduler.formula=[1]*10**10'", ("formula",)),
    ("scheduler=lambda 'scheduler.formula=epoch +'", ("formula",)),
    ("scheduler=lambda 'scheduler.formula=nosuchname * epoch'", ("nosuchname", "formula")),
    ("scheduler=lambda scheduler.formula=", ("formula",)),
    ("loss=focal loss.gamma=-1", ("gamma",)),
    ("loss=focal loss.alpha=[1,2,3]", ("alpha",)),
    ("loss=cross_entropy loss.weight=[1]", ("weight",)),
    ("loss=cross_entropy loss.weight=heavy", ("weight",)),
    ("loss=cross_entropy loss.label_smoothing=2", ("label_smoothing",)),
    ("loss.reduction=median", ("reduction",)),
    ("model.freeze=[nosuchlayer]", ("nosuchlayer",)),
    # code smuggled through _target_ on the command line
    ("+loss._target_=os.system", ("os.system", "_target_")),
    ("+model._target_=subprocess.Popen", ("subprocess.Popen", "_target_")),
    ("+optimizer._target_=builtins.eval", ("builtins.eval", "_target_")),
    ("+scheduler._target_=os.remove", ("os.remove", "_target_")),
    ("+callbacks.x._target_=os.system +callbacks.x.command='touch {marker}'", ("os.system", "_target_")),
    ("'dataset.train_transforms=[{_target_: subprocess.Popen, args: \"touch {marker}\", shell: true}]'",
     ("subprocess.Popen", "train_transforms")),
    # blobs has no transforms: "dataset.eval_transforms is not a setting" names the key
    ("'dataset.eval_transforms=[{_target_: os.system, command: \"touch {marker}\"}]'", ("os.system", "eval_transforms")),
    ("'+hydra.job_logging.handlers.x={class: logging.FileHandler, filename: {outside}/bashrc}'",
     ("hydra.job_logging", "hydra")),
    ("+hydra.callbacks.x._target_=os.system", ("hydra.callbacks", "hydra")),
    ("'hydra.sweeper.sampler={_target_: os.system, command: \"touch {marker}\"}'", ("os.system", "sampler")),
    ("model.weights=BOGUS", ("BOGUS", "model.weights")),
]


FIRST_TYPE = [o for o, _ in BAD_OVERRIDES].index("trainer.epochs=abc")
FIRST_RANGE = [o for o, _ in BAD_OVERRIDES].index("trainer.epochs=0")


def split(s: str) -> list[str]:
    import shlex

    return shlex.split(s)


def cases() -> list[Case]:
    out: list[Case] = []
    commands = {
        "train": SMOKE,
        "summary": ["experiment=smoke"],
        "lr-find": ["experiment=smoke", "lr_find.steps=10"],
    }
    for i, (ov, msg) in enumerate(BAD_OVERRIDES):
        for cmd, pre in commands.items():
            # model.weights only matters where a torchvision model is built
            extra = ["model=resnet"] if ov.startswith("model.weights") else []
            if extra and cmd != "summary":
                continue  # experiment=smoke's mlp keys do not fit a resnet; summary needs no data
            if extra:
                pre = []
            if cmd == "lr-find" and i % 5:
                continue  # lr-find and summary parse the same way: a part of the list keeps the run short
            if cmd == "summary" and i % 4 and not extra:
                continue
            # summary builds only the model, lr-find ignores the scheduler: those keys may pass there
            if cmd == "summary" and any(k in ov for k in ("scheduler", "loss.", "train_size", "n_train", "train_per")):
                continue
            if cmd == "lr-find" and "scheduler" in ov:
                continue
            cls = "unknown-key" if i < FIRST_TYPE else "bad-type" if i < FIRST_RANGE else "bad-value"
            if "_target_" in ov or "hydra." in ov or "formula=__" in ov:
                cls = "code-smuggle"
            out.append(Case(id=f"ov-{cmd}-{i:03d}", cls=cls, argv=[cmd, *pre, *extra, *split(ov)], msg=msg,
                            timeout=90))
    return out
