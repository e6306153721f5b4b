"""The sweep's GPU pool: when trials are lent GPUs, which one each gets, and too many trials for the GPUs."""

import pytest
from omegaconf import OmegaConf

from trainctl.config.compose import compose
from trainctl.errors import UserError
from trainctl.sweep.gpus import overrides_for, plan_pool, trials_per_gpu


def device(name="auto", index=None):
    return OmegaConf.create({"name": name, "index": index})


NO_POOL = [  # (device, swept keys, n_jobs, GPUs on the machine): every trial runs where `device` says
    (device("cpu"), [], 2, 2),
    (device("mps"), [], 2, 2),
    (device("cuda", 1), [], 2, 2),  # the command fixes the GPU: respected
    (device("auto"), [], 1, 2),  # one trial at a time
    (device("auto"), ["device.index"], 2, 2),  # the search chooses the GPU
    (device("auto"), ["device"], 2, 2),
    (device("auto"), [], 2, 0),  # no CUDA: auto is the CPU (or mps)
]


@pytest.mark.parametrize(("dev", "swept", "n_jobs", "gpus"), NO_POOL)
def test_trials_keep_their_device_without_a_pool(dev, swept, n_jobs, gpus):
    assert plan_pool(dev, swept, n_jobs, 1.0, lambda: gpus) is None


@pytest.mark.parametrize(("share", "per_gpu"), [(1, 1), (1.0, 1), (0.5, 2), (1 / 3, 3), (0.3, 3), (0.25, 4)])
def test_trials_per_gpu(share, per_gpu):
    assert trials_per_gpu(share) == per_gpu


def test_running_trials_get_distinct_gpus_and_give_them_back():
    pool = plan_pool(device("cuda"), ["optimizer.lr"], 2, 1.0, lambda: 2)
    first, second = pool.acquire(), pool.acquire()
    assert {first, second} == {0, 1}
    pool.release(first)
    assert pool.acquire() == first  # the GPU a finished trial gave back
    with pytest.raises(RuntimeError, match="no GPU has room"):  # plan_pool makes this unreachable in a sweep
        pool.acquire()


def test_a_shared_gpu_takes_its_share_of_trials():
    pool = plan_pool(device("auto"), [], 4, 0.5, lambda: 2)
    assert [pool.acquire() for _ in range(4)] == [0, 1, 0, 1]  # spread over the GPUs before doubling up


@pytest.mark.parametrize(("n_jobs", "gpus", "share", "message"), [
    (3, 2, 1.0, r"^hydra\.sweeper\.n_jobs=3 trials at once need more GPUs than this machine has: 2 \(cuda:0, "
                r"cuda:1\), each taking 1 trial\(s\) at a time with hydra\.sweeper\.gpus_per_trial=1\. Lower "
                r"hydra\.sweeper\.n_jobs to 2, or let trials share a GPU with hydra\.sweeper\.gpus_per_trial=0\.5 "
                r"\(2 trials per GPU\), or use device=cpu$"),
    (5, 2, 0.5, r"2 \(cuda:0, cuda:1\), each taking 2 trial\(s\) at a time with hydra\.sweeper\.gpus_per_trial=0\.5"
                r"\. Lower hydra\.sweeper\.n_jobs to 4, or .*gpus_per_trial=0\.333 \(3 trials per GPU\)"),
])
def test_more_trials_at_once_than_the_gpus_hold_is_refused(n_jobs, gpus, share, message):
    with pytest.raises(UserError, match=message):
        plan_pool(device("auto"), [], n_jobs, share, lambda: gpus)


def test_a_lent_gpu_composes_into_the_trials_device():
    assert overrides_for(1) == ["device.name=cuda", "device.index=1"]
    cfg = compose(["device=auto", *overrides_for(1)])
    assert (cfg.device.name, cfg.device.index) == ("cuda", 1)
