"""Training replicas on both cores: the results do not depend on the number of workers."""

from __future__ import annotations

import functools

import numpy as np
import pytest

from linrnn.core.errors import UsageError
from linrnn.families.gaussian import GaussianSpec
from linrnn.verify.claims import dynamics_equivalence
from linrnn.core.configure import configure
from linrnn.verify.replicas import map_replicas, replica_pool
from linrnn.train_cli import train_single


def _square_plus_draw(seed: int, index: int) -> float:
    """A replica: a number from a generator seeded by (seed, index) only."""
    return float(index**2 + np.random.default_rng([seed, index]).standard_normal())


def _pid_after(seconds: float, index: int) -> int:
    """A replica that takes a while and says which process ran it."""
    import os
    import time

    time.sleep(seconds)
    return os.getpid()


def _fails_at_three(index: int) -> int:
    if index == 3:
        raise ValueError("replica 3 failed")
    return index


def test_this_process_and_the_spawned_one_share_the_replicas() -> None:
    """Two workers = this process + one spawned: this process starts at once, the spawned one joins in."""
    import os

    pids = map_replicas(functools.partial(_pid_after, 0.4), range(10), 2)
    assert os.getpid() in pids  # this process did not wait for the spawn
    assert len(set(pids)) == 2  # and the spawned process took some of the replicas


def test_a_replicas_error_reaches_the_caller() -> None:
    with pytest.raises(ValueError, match="replica 3 failed"):
        map_replicas(_fails_at_three, range(8), 2)


def test_map_replicas_keeps_order_and_values_across_workers() -> None:
    fn = functools.partial(_square_plus_draw, 7)
    one = map_replicas(fn, range(6), 1)
    assert map_replicas(fn, range(6), 2) == one
    assert map_replicas(fn, [5, 0, 3], 2) == [one[5], one[0], one[3]]
    with replica_pool(2) as run:  # one pool, two maps
        assert run(fn, range(3)) == one[:3]
        assert run(fn, range(3, 6)) == one[3:]


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_bad_worker_counts_are_refused(bad: object) -> None:
    with pytest.raises(UsageError, match="number of workers"):
        map_replicas(abs, range(2), bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("lr", ["auto", 0.002])
def test_train_single_is_independent_of_the_workers(lr: object) -> None:
    cfg = configure(dynamics_equivalence.Config(), {"seq_len": 8, "n_seq": 16, "steps": 12, "seeds": 3, "lr": lr},
                    "test")
    model = GaussianSpec(sigma_w2=0.9)
    a = train_single(cfg, model, 48, seed=3, workers=1)
    b = train_single(cfg, model, 48, seed=3, workers=2)
    assert (a["workers"], b["workers"]) == (1, 2)
    assert a["lr"] == b["lr"]
    assert a["replicas"] == b["replicas"]  # bit for bit
    for key in ("W0", "impulse", "scnn", "loss_rnn", "x", "y"):
        np.testing.assert_array_equal(a[key], b[key])
    # the replicas are different draws (the test would pass trivially otherwise)
    assert len({r["loss_rnn_initial"] for r in a["replicas"]}) == 3


def test_progress_is_reported_per_step_with_any_workers() -> None:
    cfg = configure(dynamics_equivalence.Config(), {"seq_len": 6, "n_seq": 8, "steps": 4, "seeds": 2}, "test")
    for workers in (1, 2):
        seen: list[int] = []
        train_single(cfg, GaussianSpec(sigma_w2=0.8), 32, seed=0, workers=workers, progress=lambda k, loss: seen.append(k))
        assert seen == [0, 1, 2, 3, 4] * 2
