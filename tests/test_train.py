"""Tests for vbtutor.train: seeding, device choice, quick/full settings and the fit loop."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
import torch
from conftest import raises_naming

from vbtutor import bounds
from vbtutor.models import BernoulliVAE
from vbtutor.nn import MLP
from vbtutor.train import (
    SMOKE_CAP,
    choose,
    cpu_threads,
    fit,
    fit_seeds,
    fit_vae,
    fit_vae_seeds,
    full_mode,
    get_device,
    gradient_samples,
    seed_everything,
    setup,
    show_progress,
    smoke_cap,
    smoke_mode,
    stack_seeded,
    unvalidated,
)


def _draws() -> tuple[float, np.ndarray, torch.Tensor]:
    return random.random(), np.random.rand(3), torch.rand(3)


def test_seed_everything_reproduces_python_numpy_and_torch():
    seed_everything(17)
    first = _draws()
    seed_everything(17)
    second = _draws()
    seed_everything(18)
    other = _draws()
    assert first[0] == second[0] and first[0] != other[0]
    assert np.array_equal(first[1], second[1]) and not np.array_equal(
        first[1], other[1]
    )
    assert torch.equal(first[2], second[2]) and not torch.equal(first[2], other[2])


def test_seed_everything_returns_a_generator_seeded_with_the_seed():
    g = seed_everything(5)
    assert isinstance(g, torch.Generator)
    expected = torch.rand(4, generator=torch.Generator().manual_seed(5))
    assert torch.equal(torch.rand(4, generator=g), expected)


@pytest.mark.parametrize("seed", [-1, 1.5, True, "0", None])
def test_seed_everything_rejects_bad_seeds(seed):
    with raises_naming("seed"):
        seed_everything(seed)


@pytest.fixture
def keep_threads():
    """setup() changes torch's global thread count; put it back afterwards."""
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_setup_uses_one_thread_by_default(monkeypatch, keep_threads):
    monkeypatch.delenv("VBTUTOR_THREADS", raising=False)
    monkeypatch.setenv("VBTUTOR_DEVICE", "cpu")
    torch.set_num_threads(2)
    assert setup(0) == torch.device("cpu")
    assert cpu_threads() == 1 and torch.get_num_threads() == 1


def test_setup_prints_arrays_with_equal_decimals(keep_threads):
    with np.printoptions():
        setup(0)
        assert (
            str(np.array([1.0, -0.6, 0.08, 0.167])) == "[ 1.000 -0.600  0.080  0.167]"
        )


def test_setup_reads_the_thread_count_from_the_environment(monkeypatch, keep_threads):
    monkeypatch.setenv("VBTUTOR_THREADS", "2")
    setup(0)
    assert torch.get_num_threads() == 2


def test_setup_seeds_like_seed_everything(keep_threads):
    setup(5)
    a = _draws()
    seed_everything(5)
    b = _draws()
    assert a[0] == b[0] and np.array_equal(a[1], b[1]) and torch.equal(a[2], b[2])


@pytest.mark.parametrize("value", ["0", "-1", "two", "1.5"])
def test_cpu_threads_rejects_bad_settings(monkeypatch, value):
    monkeypatch.setenv("VBTUTOR_THREADS", value)
    with raises_naming("VBTUTOR_THREADS"):
        cpu_threads()


def test_get_device_honours_an_explicit_cpu(monkeypatch):
    monkeypatch.setenv(
        "VBTUTOR_DEVICE", "cuda"
    )  # an explicit argument beats the variable
    assert get_device("cpu") == torch.device("cpu")


def test_get_device_reads_the_environment(monkeypatch):
    monkeypatch.setenv("VBTUTOR_DEVICE", "cpu")
    assert get_device() == torch.device("cpu")


def test_get_device_picks_cuda_only_when_available(monkeypatch):
    monkeypatch.delenv("VBTUTOR_DEVICE", raising=False)
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert get_device().type == expected
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert get_device() == torch.device("cpu")


def test_get_device_rejects_unknown_devices(monkeypatch):
    with raises_naming("prefer"):
        get_device("tpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with raises_naming("prefer"):
        get_device("cuda")


@pytest.mark.parametrize(
    "value, full",
    [
        (None, False),
        ("0", False),
        ("", False),
        ("false", False),
        ("1", True),
        (" 1 ", True),
    ],
)
def test_full_mode_and_choose_follow_vbtutor_full(monkeypatch, value, full):
    if value is None:
        monkeypatch.delenv("VBTUTOR_FULL", raising=False)
    else:
        monkeypatch.setenv("VBTUTOR_FULL", value)
    assert full_mode() is full
    assert choose(quick=200, full=5000) == (5000 if full else 200)
    assert choose(quick="small", full="large") == ("large" if full else "small")


# --- smoke runs (VBTUTOR_SMOKE=1, tools/smoke_full.py) -------------------------------------


@pytest.mark.parametrize(
    "value, smoke", [(None, False), ("0", False), ("", False), ("1", True)]
)
def test_smoke_mode_follows_vbtutor_smoke(monkeypatch, value, smoke):
    monkeypatch.delenv("VBTUTOR_SMOKE_STEPS", raising=False)
    if value is None:
        monkeypatch.delenv("VBTUTOR_SMOKE", raising=False)
    else:
        monkeypatch.setenv("VBTUTOR_SMOKE", value)
    assert smoke_mode() is smoke
    assert smoke_cap(10 * SMOKE_CAP) == (SMOKE_CAP if smoke else 10 * SMOKE_CAP)
    assert smoke_cap(3) == 3


@pytest.mark.parametrize("full", ["0", "1"])
def test_choose_in_a_smoke_run_cuts_sizes_and_keeps_structure(monkeypatch, full):
    monkeypatch.setenv("VBTUTOR_FULL", full)
    monkeypatch.setenv("VBTUTOR_SMOKE", "1")
    monkeypatch.delenv("VBTUTOR_SMOKE_STEPS", raising=False)
    big = 10 * SMOKE_CAP
    assert choose(quick=big, full=2 * big) == SMOKE_CAP  # steps, draws: cut
    assert choose(quick=np.int64(big), full=np.int64(big)) == SMOKE_CAP
    assert choose(quick=2, full=3) == (3 if full == "1" else 2)  # small: kept
    wide = choose(quick=(64,), full=(256, 256))  # structure: kept whole
    assert wide == ((256, 256) if full == "1" else (64,))
    seeds = choose(quick=[0, 1, 2], full=list(range(big)))
    assert len(seeds) == (big if full == "1" else 3)
    assert choose(quick=False, full=True) is (full == "1")  # a bool is no size
    assert choose(quick=0.5, full=1e4) == (1e4 if full == "1" else 0.5)


def test_choose_outside_a_smoke_run_keeps_every_size(monkeypatch):
    monkeypatch.setenv("VBTUTOR_FULL", "1")
    monkeypatch.delenv("VBTUTOR_SMOKE", raising=False)
    assert choose(quick=200, full=40_000) == 40_000


@pytest.mark.parametrize("smoke", ["0", "1"])
def test_fit_takes_at_most_the_smoke_cap_of_steps(monkeypatch, smoke):
    monkeypatch.setenv("VBTUTOR_SMOKE", smoke)
    monkeypatch.delenv("VBTUTOR_SMOKE_STEPS", raising=False)
    w = torch.nn.Parameter(torch.tensor(0.0))
    calls = []

    def loss_fn():
        calls.append(1)
        return (w - 1.0) ** 2

    steps = SMOKE_CAP + 7
    losses = fit(loss_fn, [w], steps, progress=False)
    expected = SMOKE_CAP if smoke == "1" else steps
    assert len(calls) == len(losses) == expected
    _, history = fit_seeds(
        lambda: torch.nn.Linear(1, 1),
        [0, 1],
        lambda m: m(torch.ones(2, 3, 1)).pow(2).mean((1, 2)),
        steps,
        progress=False,
    )
    assert history.shape == (expected, 2)


def test_smoke_cap_reads_vbtutor_smoke_steps(monkeypatch):
    monkeypatch.setenv("VBTUTOR_SMOKE", "1")
    monkeypatch.setenv("VBTUTOR_SMOKE_STEPS", "400")
    assert smoke_cap(5000) == 400 and smoke_cap(300) == 300
    monkeypatch.setenv("VBTUTOR_SMOKE", "0")  # no smoke run: the setting is unused
    assert smoke_cap(5000) == 5000


@pytest.mark.parametrize("value", ["0", "-5", "ten", "2.5"])
def test_smoke_cap_rejects_bad_settings(monkeypatch, value):
    monkeypatch.setenv("VBTUTOR_SMOKE", "1")
    monkeypatch.setenv("VBTUTOR_SMOKE_STEPS", value)
    with raises_naming("VBTUTOR_SMOKE_STEPS"):
        smoke_cap(5000)


@pytest.mark.parametrize("n", [1.5, "10", True, None])
def test_smoke_cap_rejects_what_is_not_an_int(n):
    with raises_naming("n"):
        smoke_cap(n)


# --- fit ----------------------------------------------------------------------------------


def test_fit_decreases_a_quadratic_loss():
    w = torch.nn.Parameter(torch.tensor(3.0, dtype=torch.float64))
    # Adam moves w by at most about lr per step, so 100 steps of 0.01 cannot reach 1 from 3:
    # the gradient keeps its sign and the loss must fall at every step.
    history = fit(lambda: (w - 1.0) ** 2, [w], steps=100, lr=0.01)
    assert len(history) == 100 and all(isinstance(v, float) for v in history)
    assert history[0] == pytest.approx(4.0)
    assert all(b < a for a, b in zip(history, history[1:], strict=False))
    assert 1.0 < w.item() < 3.0


def test_fit_first_step_is_an_adam_step():
    """With bias correction Adam's first step is lr * g / (|g| + eps), i.e. lr against g."""
    w = torch.nn.Parameter(torch.tensor(3.0, dtype=torch.float64))
    fit(lambda: (w - 1.0) ** 2, [w], steps=1, lr=0.1)
    assert w.item() == pytest.approx(3.0 - 0.1, abs=1e-8)


def test_fit_converges_to_the_minimum():
    target = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    w = torch.nn.Parameter(torch.zeros(3, dtype=torch.float64))
    history = fit(lambda: ((w - target) ** 2).sum(), [w], steps=600, lr=0.05)
    assert history[-1] < 1e-3 * history[0]
    torch.testing.assert_close(w.detach(), target, rtol=0, atol=0.05)


@pytest.mark.parametrize(
    "steps, every, recorded", [(10, 1, 10), (10, 3, 4), (10, 10, 1), (1, 5, 1)]
)
def test_fit_records_every_nth_loss(steps, every, recorded):
    w = torch.nn.Parameter(torch.tensor(2.0))
    assert len(fit(lambda: w**2, [w], steps=steps, record_every=every)) == recorded
    assert recorded == math.ceil(steps / every)


def test_fit_is_reproducible_after_seeding():
    def run() -> list[float]:
        seed_everything(3)
        w = torch.nn.Parameter(torch.zeros(2, dtype=torch.float64))
        return fit(
            lambda: ((w - torch.randn(2, dtype=torch.float64)) ** 2).sum(),
            [w],
            steps=20,
        )

    assert run() == run()


# --- fit: bad input -----------------------------------------------------------------------


@pytest.fixture
def w():
    return torch.nn.Parameter(torch.tensor(1.0))


@pytest.mark.parametrize("steps", [0, -3, 2.0])
def test_fit_rejects_bad_steps(w, steps):
    with raises_naming("steps"):
        fit(lambda: w**2, [w], steps=steps)


@pytest.mark.parametrize("lr", [0.0, -1e-3, math.nan])
def test_fit_rejects_bad_lr(w, lr):
    with raises_naming("lr"):
        fit(lambda: w**2, [w], steps=3, lr=lr)


@pytest.mark.parametrize("every", [0, 1.5])
def test_fit_rejects_bad_record_every(w, every):
    with raises_naming("record_every"):
        fit(lambda: w**2, [w], steps=3, record_every=every)


def test_fit_rejects_a_non_scalar_loss(w):
    with raises_naming("loss_fn"):
        fit(lambda: w * torch.ones(3), [w], steps=3)


def test_fit_rejects_a_non_finite_loss(w):
    with raises_naming("loss_fn"):
        fit(lambda: w / 0.0, [w], steps=3)


def test_fit_rejects_empty_parameters(w):
    with raises_naming("parameters"):
        fit(lambda: w**2, [], steps=3)


# --- progress bar -------------------------------------------------------------------


@pytest.mark.parametrize(
    "setting, shown", [("on", True), ("off", False), ("OFF", False), (None, True)]
)
def test_show_progress_follows_the_environment(monkeypatch, setting, shown):
    if setting is None:
        monkeypatch.delenv("VBTUTOR_PROGRESS", raising=False)
    else:
        monkeypatch.setenv("VBTUTOR_PROGRESS", setting)
    assert show_progress() is shown


@pytest.mark.parametrize("setting", ["on", "off"])
def test_fit_draws_a_bar_only_when_progress_is_on(monkeypatch, capsys, setting):
    monkeypatch.setenv("VBTUTOR_PROGRESS", setting)
    w = torch.nn.Parameter(torch.tensor(2.0))
    fit(lambda: w**2, [w], steps=60)
    drawn = "training" in capsys.readouterr().err
    assert drawn is (setting == "on")
    assert w.item() < 2.0  # the bar does not change what is trained


# --- gradient_samples and fit_vae ----------------------------------------------------


def test_gradient_samples_match_the_analytic_gradient_distribution():
    """loss = w * eps with eps ~ N(3, 2^2): the gradient draws are the eps draws."""
    w = torch.nn.Parameter(torch.tensor(1.0, dtype=torch.float64))
    draws = gradient_samples(
        lambda: w * (3.0 + 2.0 * torch.randn((), dtype=torch.float64)), [w], 4000
    )
    assert draws.shape == (4000, 1)
    mean, se = draws.mean().item(), draws.std().item() / 4000**0.5
    assert abs(mean - 3.0) < 4 * se
    assert abs(draws.std().item() - 2.0) < 4 * 2.0 / (2 * 3999) ** 0.5


def test_gradient_samples_flatten_in_parameter_order_and_fill_unused_with_zeros():
    a = torch.nn.Parameter(torch.ones(2, 2))
    b = torch.nn.Parameter(torch.ones(3))
    unused = torch.nn.Parameter(torch.ones(1))
    draws = gradient_samples(lambda: (a * 2).sum() + (b * 5).sum(), [a, b, unused], 2)
    expected = torch.tensor([2.0] * 4 + [5.0] * 3 + [0.0])
    torch.testing.assert_close(draws, expected.expand(2, 8))


@pytest.mark.parametrize("n", [1, 0, 2.5, True])
def test_gradient_samples_reject_bad_n(n):
    w = torch.nn.Parameter(torch.tensor(1.0))
    with raises_naming("n"):
        gradient_samples(lambda: w * 2, [w], n)


def test_fit_vae_raises_the_elbo_and_records_its_terms():
    seed_everything(0)
    x = torch.bernoulli(torch.full((50, 6), 0.3))
    vae = BernoulliVAE(x_dim=6, z_dim=2, hidden=(8,))
    with torch.no_grad():
        before = bounds.elbo(vae, vae.encode(x), x, 200).value.mean()
    history = fit_vae(vae, x, steps=300, batch_size=20, lr=1e-2, record_every=10)
    with torch.no_grad():
        after = bounds.elbo(vae, vae.encode(x), x, 200).value.mean()
    assert after > before
    assert all(len(v) == 30 for v in history.values())
    assert all(k >= 0 for k in history["kl"])  # a KL is never negative


@pytest.mark.parametrize(
    "kwargs, name", [({"batch_size": 0}, "batch_size"), ({"steps": 0}, "steps")]
)
def test_fit_vae_rejects_bad_settings(kwargs, name):
    vae = BernoulliVAE(x_dim=6, z_dim=2, hidden=(8,))
    settings = {"steps": 5, **kwargs}
    with raises_naming(name):
        fit_vae(vae, torch.zeros(10, 6), **settings)
    with raises_naming("x"):
        fit_vae(vae, torch.zeros(6), steps=5)


def small_vae():
    return BernoulliVAE(x_dim=6, z_dim=2, hidden=(8,)).double()


def test_fit_vae_seeds_starts_each_copy_from_its_seed_and_trains_it():
    x = torch.bernoulli(torch.full((50, 6), 0.3, dtype=torch.float64))
    starts = []
    for seed in (3, 7):
        seed_everything(seed)
        starts.append(small_vae())
    # a vanishing learning rate leaves each copy at its seed's initial weights
    still = fit_vae_seeds(small_vae, [3, 7], x, steps=1, lr=1e-12)
    for model, start in zip(still, starts, strict=True):
        for p, q in zip(model.parameters(), start.parameters(), strict=True):
            torch.testing.assert_close(p, q, rtol=0, atol=1e-9)
    trained = fit_vae_seeds(small_vae, [3, 7], x, steps=300, batch_size=20, lr=1e-2)
    with torch.no_grad():
        for model, start in zip(trained, starts, strict=True):
            after = bounds.elbo(model, model.encode(x), x, 200).value.mean()
            before = bounds.elbo(start, start.encode(x), x, 200).value.mean()
            assert after > before + 0.5  # every copy learned, not only the first


def test_fit_vae_seeds_copies_draw_their_own_noise():
    # identical seeds give identical starts; each copy's own batches and Monte Carlo
    # draws make them part (copies sharing one stream's draws would stay equal)
    x = torch.bernoulli(torch.full((50, 6), 0.3, dtype=torch.float64))
    a, b = fit_vae_seeds(small_vae, [1, 1], x, steps=20, batch_size=5, lr=1e-2)
    assert not torch.equal(a.decoder[0].weight, b.decoder[0].weight)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"seeds": []}, "seeds"),
        ({"seeds": [-1]}, "seeds"),
        ({"batch_size": 0}, "batch_size"),
        ({"steps": 0}, "steps"),
        ({"x": torch.zeros(6)}, "x"),
    ],
)
def test_fit_vae_seeds_rejects_bad_settings(kwargs, name):
    settings = {"seeds": [0], "x": torch.zeros(10, 6), "steps": 5, **kwargs}
    with raises_naming(name):
        fit_vae_seeds(small_vae, **settings)


def test_fit_seeds_trains_each_copy_on_its_own_loss_and_records_it():
    # copy s fits the constant target[s]: the copies must not pull each other
    target = torch.tensor([-1.0, 0.5, 3.0], dtype=torch.float64)

    def loss(stacked):
        out = stacked(torch.ones(3, 4, 1, dtype=torch.float64)).squeeze(-1)
        return (out - target[:, None]).pow(2).mean(-1)

    def make():
        return MLP((1, 4, 1)).double()

    models, losses = fit_seeds(make, [0, 1, 2], loss, steps=400, lr=0.03)
    fitted = [m(torch.ones(1, dtype=torch.float64)).item() for m in models]
    np.testing.assert_allclose(fitted, target.numpy(), atol=1e-2)
    assert losses.shape == (400, 3) and (losses[-1] < 1e-4).all()
    assert (losses[0] > 0.1).any()


def test_fit_seeds_wants_one_loss_per_seed():
    def summed(stacked):
        return stacked(torch.ones(2, 1, 1)).sum()

    with raises_naming("loss"):
        fit_seeds(lambda: MLP((1, 1)), [0, 1], summed, steps=2)


def test_unvalidated_turns_the_checks_off_and_back_on():
    assert torch.distributions.Distribution._validate_args
    with pytest.raises(RuntimeError), unvalidated():
        torch.distributions.Normal(0.0, -1.0)  # accepted: no check
        raise RuntimeError("leave the block by an error")
    with pytest.raises(ValueError):  # restored, even after the error
        torch.distributions.Normal(0.0, -1.0)
    with unvalidated(skip=False), pytest.raises(ValueError):
        torch.distributions.Normal(0.0, -1.0)


def test_fit_validates_the_first_step_and_skips_the_checks_later():
    w = torch.nn.Parameter(torch.tensor(1.0))
    seen = []

    def loss_fn():
        seen.append(torch.distributions.Distribution._validate_args)
        return torch.distributions.Normal(w, 1.0).log_prob(torch.tensor(0.5)) ** 2

    fit(loss_fn, [w], steps=3, progress=False)
    assert seen == [True, False, False]
    assert torch.distributions.Distribution._validate_args  # restored

    def bad_scale():
        return torch.distributions.Normal(0.0, -w).log_prob(torch.tensor(0.5))

    with pytest.raises(ValueError, match="scale"):  # caught on the first step
        fit(bad_scale, [w], steps=3, progress=False)


def test_stack_seeded_builds_each_set_from_its_seed():
    def make():
        return torch.nn.Linear(2, 3), torch.nn.Linear(3, 1)

    stacked, sets = stack_seeded(make, [4, 7], ("first", "second"))
    for seed, networks in zip([4, 7], sets, strict=True):
        seed_everything(seed)
        first, second = make()
        torch.testing.assert_close(networks["first"].weight, first.weight)
        torch.testing.assert_close(networks["second"].bias, second.bias)
    x = torch.randn(2, 5, 2)
    out = stacked["second"](stacked["first"](x))
    torch.testing.assert_close(out[1], sets[1]["second"](sets[1]["first"](x[1])))
    with raises_naming("make"):
        stack_seeded(make, [0], ("only",))
