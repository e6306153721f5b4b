"""Bad values of the top-level settings, the model, the dataset and the device, and the written cases, refused
in-process naming their key (the corpus: bad_cases.py). The optimizer, scheduler and loss are in
test_values_training.py: one file would take over a minute."""

from __future__ import annotations

import pytest

from trainctl.config.compose import GROUPS

from bad_cases import MODEL_AND_DATA_GROUPS, TRAINING_GROUPS, assert_value_refused, generated_cases

WRITTEN_CASES = [
    (["+model.foo=1"], "model.foo"),
    (["+trainer.x=1"], "trainer.x"),
    (["+foo=1"], "foo"),
    (["model=mlp", "model.batch_norm=2"], "model.batch_norm"),
    (["trainer.progress=maybe"], "trainer.progress"),
    (["~model"], "model"),
    (["~optimizer"], "optimizer"),
    (["optimizer=adam", "optimizer.betas=[0.9]"], "optimizer.betas"),
    (["optimizer=adam", "optimizer.betas=[0.9,1.5]"], "optimizer.betas"),
    (["model=cnn", "model.channels=[]"], "model.channels"),
    (["model=cnn", "model.channels=[0,4]"], "model.channels"),
    (["dataset.std=[0]"], "dataset.std"),
    (["dataset.std=[inf]"], "dataset.std"),
    (["dataset.std=[${oc.env:HOME}]"], "dataset.std"),
    (["dataset.mean=${oc.env:NO_SUCH_VARIABLE_HERE}"], "dataset.mean"),
    (["model.activation=swish"], "model.activation"),
    (["model=cnn", "model.norm=layer", "model.batch_norm=true"], "model.norm=layer contradicts model.batch_norm"),
    (["model=cnn", "model.norm=banana"], "model.norm"),
    (["trainer.epochs=100001"], "trainer.epochs=100001 is out of range"),
    (["device.index=-1"], "device.index"),
    (["dataset.train_per_class=0"], "dataset.train_per_class"),
    (["trainer.precision=fp8"], "trainer.precision"),
    (["objective=val/accuracy"], "objective"),
    (["checkpoint.monitor=val/f1"], "checkpoint.monitor"),
    (["early_stopping.monitor=loss"], "early_stopping.monitor"),
    (["trainer.epoch=1"], "trainer.epoch"),
    (["modle=cnn"], "modle"),
    (["optimizer.lrr=0.1"], "optimizer.lrr"),
    (["optimizer=sgd", "optimizer.nesterov=true", "optimizer.momentum=0"], "optimizer.nesterov"),
    (["trainer.gradient_clip_algorithm=l2"], "trainer.gradient_clip_algorithm"),
    (["scheduler=plateau", "scheduler.mode=up"], "scheduler.mode"),
    (["model=vgg", "model.preset=vgg19"], "model.preset"),
    (["dataset=imagefolder", "dataset.image_size=[32]"], "dataset.image_size"),
    # mean/std: one value per channel of the dataset (or one for all), known from the config alone
    (["dataset=fashionmnist", "dataset.mean=[0.5,0.5,0.5]"], "dataset.mean=[0.5, 0.5, 0.5] has 3 values but "
                                                             "fashionmnist images have 1 channel"),
    (["dataset=cifar10", "dataset.std=[0.2,0.2]"], "cifar10 images have 3 channel"),
    (["dataset=imagefolder", "dataset.grayscale=true"], "dataset.grayscale=true gives 1 channel"),
    # an override Hydra cannot parse is named, with its quoted form
    (["scheduler=lambda", "scheduler.formula=0.5*(1+cos(pi*epoch/10))"],
     "cannot read the override scheduler.formula=0.5*(1+cos(pi*epoch/10))"),
    (["scheduler=lambda", "scheduler.formula=0.5*(1+cos(pi*epoch/10))"],
     "\"scheduler.formula='0.5*(1+cos(pi*epoch/10))'\""),
    (["hydra.verbose=[["], "cannot read the override hydra.verbose=[["),
]

CASES = generated_cases(MODEL_AND_DATA_GROUPS, top_level=True) + WRITTEN_CASES


def test_the_corpus_is_large_and_covers_every_group():
    assert sorted(MODEL_AND_DATA_GROUPS + TRAINING_GROUPS) == sorted(GROUPS)
    everything = generated_cases(GROUPS, top_level=True) + WRITTEN_CASES
    assert len(everything) >= 150, len(everything)
    assert len(everything) == len(CASES) + len(generated_cases(TRAINING_GROUPS, top_level=False))


@pytest.mark.parametrize(("overrides", "culprit"), CASES, ids=[" ".join(o) for o, _ in CASES])
def test_a_bad_value_is_refused_naming_its_key(overrides, culprit):
    assert_value_refused(overrides, culprit)
