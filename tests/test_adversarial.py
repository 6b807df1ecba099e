"""Tests for vbtutor.adversarial: the VAE-GAN losses and their training loop."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from conftest import flat_parameters, raises_naming
from torch import distributions as D

from vbtutor.adversarial import (
    Discriminator,
    ImplicitEncoder,
    train_avb,
    train_avb_seeds,
    train_vaegan,
    train_vaegan_seeds,
    vaegan_losses,
)
from vbtutor.density_ratio import log_ratio_loss
from vbtutor.models import GaussianVAE
from vbtutor.nn import MLP
from vbtutor.train import seed_everything


@pytest.fixture
def nets():
    torch.manual_seed(0)
    vae = GaussianVAE(x_dim=6, z_dim=2, hidden=(8,), sigma=0.3).double()
    disc = Discriminator(x_dim=6, hidden=(5, 4)).double()
    return vae, disc


@pytest.fixture
def x():
    return torch.rand(7, 6, dtype=torch.float64)


def test_discriminator_shapes(nets, x):
    _, disc = nets
    assert disc.features(x).shape == (7, 4)
    assert disc(x).shape == (7,)


def test_losses_match_their_definitions_on_the_same_draws(nets, x):
    """Recompute every loss from its formula with the same random draws."""
    vae, disc = nets
    torch.manual_seed(3)
    losses = vaegan_losses(vae, disc, x, gamma=2.0)
    torch.manual_seed(3)
    q = vae.encode(x)
    x_rec = vae.decode(q.rsample())
    x_gen = vae.decode(vae.prior().sample((7,)))
    kl = D.kl_divergence(q, vae.prior()).mean()
    feat = 0.5 * ((disc.features(x) - disc.features(x_rec)) ** 2).sum(-1).mean()
    p_real, p_rec, p_gen = (torch.sigmoid(disc(a)) for a in (x, x_rec, x_gen))
    fool = -(p_rec.log().mean() + p_gen.log().mean())
    classify = -(
        p_real.log().mean() + (1 - p_rec).log().mean() + (1 - p_gen).log().mean()
    )
    torch.testing.assert_close(losses["kl"], kl)
    torch.testing.assert_close(losses["feature_error"], feat)
    torch.testing.assert_close(losses["encoder"], kl + feat)
    torch.testing.assert_close(losses["decoder"], 2.0 * feat + fool)
    torch.testing.assert_close(losses["discriminator"], classify)


def test_feature_error_is_a_gaussian_negative_log_likelihood_up_to_a_constant(nets, x):
    vae, disc = nets
    torch.manual_seed(4)
    feature_error = vaegan_losses(vae, disc, x)["feature_error"]
    torch.manual_seed(4)
    x_rec = vae.decode(vae.encode(x).rsample())
    target = disc.features(x)
    normal = D.Independent(D.Normal(disc.features(x_rec), 1.0), 1)
    nll = -normal.log_prob(target).mean()
    constant = 0.5 * target.shape[-1] * math.log(2 * math.pi)
    torch.testing.assert_close(feature_error, nll - constant)


def test_training_updates_each_network_only_with_its_own_loss(nets, x):
    """After one step each network has moved by an Adam step on its own loss alone.

    Adam's first step is lr * g / (|g| + eps) per entry, so the expected move of every
    parameter follows from the gradient of the network's own loss on the same draws.
    """
    vae, disc = nets
    start = copy.deepcopy((vae, disc))
    lr = 0.01
    torch.manual_seed(5)
    train_vaegan(vae, disc, x, steps=1, batch_size=7, lr=lr)
    vae0, disc0 = start
    torch.manual_seed(5)
    batch = x[torch.randint(0, 7, (7,))]
    losses = vaegan_losses(vae0, disc0, batch)
    groups = {
        "encoder": (vae0.encoder, vae.encoder),
        "decoder": (vae0.decoder, vae.decoder),
        "discriminator": (disc0, disc),
    }
    for name, (old, new) in groups.items():
        params = list(old.parameters())
        grads = torch.autograd.grad(losses[name], params, retain_graph=True)
        for p0, p1, g in zip(params, new.parameters(), grads, strict=True):
            expected = p0 - lr * g / (g.abs() + 1e-8)
            torch.testing.assert_close(p1.detach(), expected.detach(), msg=name)


def test_training_records_every_loss(nets, x):
    vae, disc = nets
    history = train_vaegan(vae, disc, x, steps=3, batch_size=4)
    assert set(history) == {
        "encoder",
        "decoder",
        "discriminator",
        "kl",
        "feature_error",
    }
    assert all(
        len(v) == 3 and all(math.isfinite(a) for a in v) for v in history.values()
    )


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"steps": 0}, "steps"),
        ({"batch_size": 0}, "batch_size"),
        ({"lr": 0.0}, "lr"),
        ({"gamma": -1.0}, "gamma"),
    ],
)
def test_training_rejects_bad_settings(nets, x, kwargs, name):
    vae, disc = nets
    settings = {"steps": 1, **kwargs}
    with raises_naming(name):
        train_vaegan(vae, disc, x, **settings)


def test_losses_reject_a_non_matrix_batch(nets):
    vae, disc = nets
    with raises_naming("x"):
        vaegan_losses(vae, disc, torch.zeros(6, dtype=torch.float64))


def test_discriminator_needs_a_hidden_layer():
    with raises_naming("hidden"):
        Discriminator(6, hidden=())


def small_pair():
    vae = GaussianVAE(x_dim=6, z_dim=2, hidden=(8,), sigma=0.3).double()
    return vae, Discriminator(x_dim=6, hidden=(5, 4)).double()


def test_losses_take_a_leading_seed_axis(nets, x):
    vae, disc = nets
    torch.manual_seed(6)
    flat = vaegan_losses(vae, disc, x)
    torch.manual_seed(6)
    one_seed = vaegan_losses(vae, disc, x.unsqueeze(0))  # the same draws
    for name, value in flat.items():
        assert value.shape == () and one_seed[name].shape == (1,)
        torch.testing.assert_close(one_seed[name][0], value, msg=name)


def test_vaegan_seeds_start_from_their_seeds_and_all_train():
    x = torch.rand(40, 6, dtype=torch.float64)
    starts = []
    for seed in (2, 9):
        seed_everything(seed)
        starts.append(small_pair())
    still = train_vaegan_seeds(small_pair, [2, 9], x, steps=1, lr=1e-12)
    for (vae, disc), (vae0, disc0) in zip(still, starts, strict=True):
        for a, b in zip(
            [*vae.parameters(), *disc.parameters()],
            [*vae0.parameters(), *disc0.parameters()],
            strict=True,
        ):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-9)
    trained = train_vaegan_seeds(small_pair, [2, 9], x, steps=200, batch_size=10)
    for (vae, disc), (vae0, disc0) in zip(trained, starts, strict=True):
        for new, old in [
            (vae.encoder, vae0.encoder),
            (vae.decoder, vae0.decoder),
            (disc, disc0),
        ]:  # every network of every copy moved
            moved = max(
                (a - b).abs().max()
                for a, b in zip(new.parameters(), old.parameters(), strict=True)
            )
            assert moved > 1e-3


def test_vaegan_seeds_reject_bad_seeds():
    with raises_naming("seeds"):
        train_vaegan_seeds(small_pair, [], torch.rand(5, 6), steps=1)


def test_train_avb_gives_each_network_only_its_own_gradient():
    """One step equals an Adam step of the critic on its loss, then of the encoder."""
    torch.manual_seed(0)
    encoder = ImplicitEncoder(1, 2, 2, hidden=(6,)).double()
    critic = MLP((3, 6, 1)).double()
    x = torch.randn(20, 1, dtype=torch.float64)
    prior = D.Independent(D.Normal(torch.zeros(2, dtype=torch.float64), 1.0), 1)

    def lik(xb, z):
        return D.Normal(z[:, :1] * z[:, 1:], 0.5).log_prob(xb).sum(-1)

    enc2, crit2 = copy.deepcopy(encoder), copy.deepcopy(critic)
    torch.manual_seed(7)
    train_avb(encoder, critic, x, lik, prior, 1, batch_size=8, lr_encoder=0.1,
              lr_critic=0.01, record_every=1)  # fmt: skip
    torch.manual_seed(7)
    opt_c = torch.optim.Adam(crit2.parameters(), lr=0.01)
    opt_e = torch.optim.Adam(enc2.parameters(), lr=0.1)
    xb = x[torch.randint(0, 20, (8,))]
    with torch.no_grad():
        z_q = enc2(xb)
    z_p = prior.sample((8,))
    log_ratio_loss(crit2, torch.cat([xb, z_q], -1), torch.cat([xb, z_p], -1)).backward()
    opt_c.step()
    xb = x[torch.randint(0, 20, (8,))]
    z = enc2(xb)
    objective = (lik(xb, z) - crit2(torch.cat([xb, z], -1)).squeeze(-1)).mean()
    opt_e.zero_grad()
    (-objective).backward()
    opt_e.step()
    for a, b in [(encoder, enc2), (critic, crit2)]:
        torch.testing.assert_close(flat_parameters(a), flat_parameters(b))


def test_train_avb_records_and_calls_back():
    seen = []
    encoder, critic = ImplicitEncoder(1, 1, 1, hidden=(4,)), MLP((2, 4, 1))
    prior = D.Independent(D.Normal(torch.zeros(1), 1.0), 1)

    def lik(xb, z):
        return D.Normal(z, 1.0).log_prob(xb).sum(-1)

    history = train_avb(encoder, critic, torch.randn(10, 1), lik, prior, 9,
                        critic_steps=2, record_every=3, callback=seen.append)  # fmt: skip
    assert seen == [3, 6, 9]
    assert all(len(v) == 3 for v in history.values())


def _avb_problem():
    prior = D.Independent(D.Normal(torch.zeros(2, dtype=torch.float64), 1.0), 1)

    def lik(xb, z):
        return D.Normal(z[..., :1] * z[..., 1:], 0.5).log_prob(xb).sum(-1)

    def make():
        return ImplicitEncoder(1, 2, 2, hidden=(6,)).double(), MLP((3, 6, 1)).double()

    return torch.randn(20, 1, dtype=torch.float64), lik, prior, make


def test_avb_seeds_with_one_seed_is_train_avb():
    """One stacked copy draws what train_avb draws and takes the same steps."""
    x, lik, prior, make = _avb_problem()
    options = dict(critic_steps=2, batch_size=8, lr_encoder=0.01, lr_critic=0.02)
    [(encoder, critic)], history = train_avb_seeds(
        make, [4], x, lik, prior, 30, record_every=10, **options
    )
    seed_everything(4)
    encoder2, critic2 = make()
    history2 = train_avb(
        encoder2, critic2, x, lik, prior, 30, record_every=10, **options
    )
    for a, b in [(encoder, encoder2), (critic, critic2)]:
        torch.testing.assert_close(flat_parameters(a), flat_parameters(b))
    for name, values in history.items():
        np.testing.assert_allclose(np.ravel(values), history2[name], rtol=1e-10)


def test_avb_seeds_start_from_their_seeds_train_each_and_call_back():
    x, lik, prior, make = _avb_problem()
    starts = []
    for seed in (2, 9):
        seed_everything(seed)
        starts.append(make())
    seen = []

    def record(step, encoders):
        seen.append((step, [flat_parameters(e) for e in encoders]))

    pairs, history = train_avb_seeds(make, [2, 9], x, lik, prior, 40, batch_size=8,
                                     lr_encoder=0.01, record_every=20, callback=record)  # fmt: skip
    assert [step for step, _ in seen] == [20, 40]
    assert all(np.shape(v) == (2, 2) for v in history.values())
    for s, (pair, start) in enumerate(zip(pairs, starts, strict=True)):
        torch.testing.assert_close(seen[-1][1][s], flat_parameters(pair[0]))
        for net, net0 in zip(pair, start, strict=True):  # every network moved
            moved = (flat_parameters(net) - flat_parameters(net0)).abs().max()
            assert moved > 1e-3


def test_avb_bad_input_is_named():
    with raises_naming("noise_dim"):
        ImplicitEncoder(1, 2, noise_dim=0)
    prior = D.Independent(D.Normal(torch.zeros(1), 1.0), 1)
    enc, critic = ImplicitEncoder(1, 1, 1), MLP((2, 4, 1))
    x1 = torch.randn(5, 1)
    with raises_naming("critic_steps"):
        train_avb(enc, critic, x1, lambda a, b: a.sum(-1), prior, 1, critic_steps=0)
    with raises_naming("lr_critic"):
        train_avb(enc, critic, x1, lambda a, b: a.sum(-1), prior, 1, lr_critic=0.0)
    with raises_naming("prior"):
        train_avb(enc, critic, x1, lambda a, b: a.sum(-1), D.Normal(0.0, 1.0), 1)
