"""Adversarial training: the VAE-GAN of Larsen et al. (2016) and adversarial variational
Bayes (AVB, Mescheder et al. 2017), whose critic is a density-ratio estimator.

Chapters vae and avb.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import distributions as D
from torch import nn
from torch.nn import functional as F
from tqdm.auto import trange

from ._checks import check_positive, check_positive_int, check_tensor
from .density_ratio import _log_ratio_output, log_ratio_loss
from .models import VAE
from .nn import MLP, unstack_networks
from .train import show_progress, stack_seeded, unvalidated

__all__ = [
    "Discriminator",
    "vaegan_losses",
    "train_vaegan",
    "train_vaegan_seeds",
    "ImplicitEncoder",
    "train_avb",
    "train_avb_seeds",
]


class Discriminator(nn.Module):
    """An MLP classifier of real against generated data that exposes a hidden layer.

    ``features(x)`` is the pre-activation of the last hidden layer, the "layer l" whose
    distance replaces the pixel-wise reconstruction error in a VAE-GAN; ``forward(x)``
    is the logit of "x is real". Chapter: vae.

    Arguments:
        x_dim: data dimension.
        hidden: widths of the hidden layers (at least one).

    Example:
        >>> d = Discriminator(64, hidden=(32, 16))
        >>> d.features(torch.zeros(5, 64)).shape, d(torch.zeros(5, 64)).shape
        (torch.Size([5, 16]), torch.Size([5]))
    """

    def __init__(self, x_dim: int, hidden: tuple[int, ...] = (64, 32)):
        super().__init__()
        if len(hidden) < 1:
            raise ValueError("hidden must name at least one hidden layer width")
        check_positive_int("x_dim", x_dim)
        self.body = MLP((x_dim, *hidden))
        self.head = nn.Linear(hidden[-1], 1)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.tanh(self.body(x))).squeeze(-1)


def vaegan_losses(
    vae: VAE, disc: Discriminator, x: torch.Tensor, gamma: float = 1.0
) -> dict[str, torch.Tensor]:
    r"""The three VAE-GAN losses on a batch ``x`` (Larsen et al. 2016, eqs. 8-10).

    With :math:`\tilde x` the decoded mean of :math:`z \sim q_\phi(z|x)` and :math:`x_p`
    that of :math:`z \sim p(z)`:

    - ``encoder``: KL(q(z|x) || p(z)) + the feature error
      :math:`\tfrac12\|\mathrm{Dis}_l(x) - \mathrm{Dis}_l(\tilde x)\|^2`, i.e.
      :math:`-\log \mathcal N(\mathrm{Dis}_l(x); \mathrm{Dis}_l(\tilde x), I)` up to a
      constant, in place of the pixel reconstruction error;
    - ``decoder``: ``gamma`` times the feature error plus the non-saturating GAN loss
      that asks the discriminator to call :math:`\tilde x` and :math:`x_p` real;
    - ``discriminator``: the GAN classification loss, real x against both fakes.

    Each loss is meant to update only its own network (see :func:`train_vaegan`).

    Arguments:
        vae: the VAE whose decoder is the generator.
        disc: the discriminator.
        x: a batch, shape ``(n, x_dim)``, or ``(S, n, x_dim)`` for networks stacked by
            :func:`vbtutor.nn.stack_networks` (one batch per copy).
        gamma: weight of the feature error in the decoder's loss, positive.

    Returns:
        Dict with tensors ``encoder``, ``decoder``, ``discriminator``, ``kl``,
        ``feature_error``, each averaged over the batch: scalars, or shape ``(S,)``.

    References:
        Larsen, Sønderby, Larochelle & Winther (2016), arXiv:1512.09300.
    """
    check_tensor("x", x, min_dim=2)
    if x.dim() > 3:
        raise ValueError(f"x must be (n, x_dim) or (S, n, x_dim), got {tuple(x.shape)}")
    check_positive("gamma", gamma)
    q = vae.encode(x)
    x_rec = vae.decode(q.rsample())
    x_gen = vae.decode(vae.prior().sample(x.shape[:-1]))
    kl = D.kl_divergence(q, vae.prior()).mean(-1)
    feature_error = 0.5 * (disc.features(x) - disc.features(x_rec)).pow(2).sum(-1).mean(
        -1
    )
    real, rec, gen = disc(x), disc(x_rec), disc(x_gen)

    def bce(logits: torch.Tensor, label: float) -> torch.Tensor:
        target = torch.full_like(logits, label)
        return F.binary_cross_entropy_with_logits(
            logits, target, reduction="none"
        ).mean(-1)

    fool = bce(rec, 1.0) + bce(gen, 1.0)
    classify = bce(real, 1.0) + bce(rec, 0.0) + bce(gen, 0.0)
    return {
        "encoder": kl + feature_error,
        "decoder": gamma * feature_error + fool,
        "discriminator": classify,
        "kl": kl,
        "feature_error": feature_error,
    }


def train_vaegan(
    vae: VAE,
    disc: Discriminator,
    x: torch.Tensor,
    steps: int,
    batch_size: int = 100,
    lr: float = 1e-3,
    gamma: float = 1.0,
) -> dict[str, list]:
    """Train a VAE-GAN: each network takes an Adam step on its own loss every step.

    The three losses share one forward pass, and each optimiser receives the gradient of
    its own loss with respect to its own parameters only, so the feature error never
    trains the discriminator (Larsen et al. 2016, Algorithm 1). This is a loop of its own
    because :func:`vbtutor.train.fit` minimises a single loss.

    Arguments:
        vae, disc: the networks, trained in place.
        x: training data, shape ``(n, x_dim)``; mini-batches are drawn with replacement.
        steps: number of steps, at least 1.
        batch_size: mini-batch size, at least 1.
        lr: Adam learning rate of all three networks, positive.
        gamma: as in :func:`vaegan_losses`.

    Returns:
        Dict of per-step histories of every entry of :func:`vaegan_losses`.
    """
    return _train_vaegan(vae, disc, x, steps, (batch_size,), lr, gamma)


def train_vaegan_seeds(
    make: Callable[[], tuple[VAE, Discriminator]],
    seeds: Iterable[int],
    x: torch.Tensor,
    steps: int,
    batch_size: int = 100,
    lr: float = 1e-3,
    gamma: float = 1.0,
) -> list[tuple[VAE, Discriminator]]:
    """Train one VAE-GAN per seed, all side by side, as :func:`train_vaegan` would.

    For each seed, :func:`vbtutor.train.seed_everything` then ``make()`` builds that
    seed's pair of networks. The pairs are stacked (:func:`vbtutor.nn.stack_networks`)
    and every step each copy gets its own mini-batch and its own draws; each optimiser
    gets the gradient of the sum of the copies' losses, which for each copy is that of
    its own loss. Adam's update is element-wise, so each copy follows an independent
    run (not bit-identical to :func:`train_vaegan`: the draws come from one stream).

    Arguments:
        make: builds one ``(vae, disc)`` pair; every parameter must sit in an
            ``nn.Linear`` layer.
        seeds: at least one non-negative integer.
        x, steps, batch_size, lr, gamma: as in :func:`train_vaegan`.

    Returns:
        The trained ``(vae, disc)`` pairs, in the order of ``seeds``.
    """
    stacked, pairs = stack_seeded(make, seeds, ("vae", "disc"))
    shape = (len(pairs), batch_size)
    _train_vaegan(stacked["vae"], stacked["disc"], x, steps, shape, lr, gamma)
    return [(pair["vae"], pair["disc"]) for pair in unstack_networks(stacked, pairs)]


def _train_vaegan(
    vae: VAE,
    disc: Discriminator,
    x: torch.Tensor,
    steps: int,
    batch_shape: tuple[int, ...],
    lr: float,
    gamma: float,
) -> dict[str, list]:
    check_tensor("x", x, dim=2)
    check_positive_int("steps", steps)
    check_positive_int("batch_size", batch_shape[-1])
    check_positive("lr", lr)
    groups = {
        "encoder": list(vae.encoder.parameters()),
        "decoder": list(vae.decoder.parameters()),
        "discriminator": list(disc.parameters()),
    }
    optimisers = {k: torch.optim.Adam(v, lr=lr) for k, v in groups.items()}
    history: dict[str, list] = {}
    bar = trange(steps, desc="VAE-GAN", leave=False, disable=not show_progress())
    for step in bar:
        batch = x[torch.randint(0, len(x), batch_shape, device=x.device)]
        with unvalidated(step > 0):  # checks on the first step only
            losses = vaegan_losses(vae, disc, batch, gamma)
        for name, params in groups.items():
            # a sum over stacked copies: each copy's gradient is its own loss's
            grads = torch.autograd.grad(losses[name].sum(), params, retain_graph=True)
            for p, g in zip(params, grads, strict=True):
                p.grad = g
            optimisers[name].step()
        for name, value in losses.items():
            history.setdefault(name, []).append(value.tolist())
    return history


class ImplicitEncoder(nn.Module):
    r"""A sampler :math:`z = g_\phi(x, \varepsilon)`, :math:`\varepsilon \sim \mathcal N(0, I)`.

    The noise enters the network together with x, so :math:`q_\phi(z \mid x)` can be
    any shape (several modes, curved ridges) but has no density to evaluate: the
    "black-box" inference model of adversarial variational Bayes. Chapter: avb.

    Arguments:
        x_dim, z_dim: data and latent dimensions.
        noise_dim: dimension of the input noise, at least 1.
        hidden: hidden-layer widths.

    References:
        Mescheder, Nowozin & Geiger (2017), adversarial variational Bayes,
        arXiv:1701.04722.

    Example:
        >>> enc = ImplicitEncoder(x_dim=1, z_dim=2, noise_dim=3, hidden=(16,))
        >>> enc(torch.zeros(5, 1)).shape
        torch.Size([5, 2])
    """

    def __init__(
        self, x_dim: int, z_dim: int, noise_dim: int, hidden: tuple[int, ...] = (64, 64)
    ):
        super().__init__()
        check_positive_int("x_dim", x_dim)
        check_positive_int("z_dim", z_dim)
        check_positive_int("noise_dim", noise_dim)
        self.noise_dim = noise_dim
        self.net = MLP((x_dim + noise_dim, *hidden, z_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_tensor("x", x, min_dim=2)
        shape = x.shape[:-1] + (self.noise_dim,)  # (n, ...) or, stacked, (S, n, ...)
        eps = torch.randn(shape, dtype=x.dtype, device=x.device)
        return self.net(torch.cat([x, eps], dim=-1))


def train_avb(
    encoder: nn.Module,
    critic: nn.Module,
    x: torch.Tensor,
    log_likelihood: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    prior: D.Distribution,
    steps: int,
    critic_steps: int = 1,
    batch_size: int = 128,
    lr_encoder: float = 1e-3,
    lr_critic: float = 1e-3,
    parameters: Iterable[nn.Parameter] | None = None,
    record_every: int = 10,
    callback: Callable[[int], None] | None = None,
) -> dict[str, list[float]]:
    r"""Adversarial variational Bayes: alternate critic and encoder updates.

    Every step first takes ``critic_steps`` Adam steps on :func:`log_ratio_loss` for
    pairs :math:`(x, z)` with :math:`z \sim q_\phi(z \mid x)` (label 1) against
    :math:`(x, z)` with :math:`z \sim p(z)` (label 0), both on the same mini-batch of
    x; ``critic(cat([x, z]))`` then estimates
    :math:`T^*(x, z) = \log q_\phi(z \mid x) - \log p(z)`. Then one Adam step ascends
    :math:`\mathbb E_{q_\phi}[\log p(x \mid z) - T(x, z)]` in the encoder's parameters
    with the critic held fixed, the gradient flowing through the sample
    :math:`z = g_\phi(x, \varepsilon)`. Chapter: avb.

    Arguments:
        encoder: maps x ``(n, x_dim)`` to samples z ``(n, z_dim)`` (draws its own
            noise), e.g. :class:`ImplicitEncoder`.
        critic: maps rows ``cat([x, z])`` to T, shape ``(n,)`` or ``(n, 1)``.
        x: observations ``(n, x_dim)``; mini-batches are drawn with replacement.
        log_likelihood: ``(x, z) -> log p(x | z)``, shape ``(n,)``.
        prior: p(z), with ``event_shape == (z_dim,)``.
        steps: encoder steps, at least 1.
        critic_steps: critic steps per encoder step, at least 1.
        batch_size: rows per mini-batch, at least 1.
        lr_encoder, lr_critic: Adam learning rates, positive.
        parameters: what the ELBO step trains (default: the encoder's parameters; add
            a decoder's to learn it too).
        record_every: record the history (and call ``callback``) every this many steps.
        callback: called with the number of completed steps at each record.

    Returns:
        Dict of lists: ``critic_loss`` (cross-entropy of the last critic step),
        ``objective`` (the batch mean of :math:`\log p(x \mid z) - T`) and
        ``t_mean`` (the batch mean of T under q, the critic's estimate of
        :math:`\mathrm{KL}(q_\phi(z \mid x) \,\|\, p(z))`), one entry per record.

    References:
        Mescheder, Nowozin & Geiger (2017), adversarial variational Bayes,
        arXiv:1701.04722, Algorithm 1.

    Example:
        >>> _ = torch.manual_seed(0)
        >>> enc, critic = ImplicitEncoder(1, 1, 1, (8,)), MLP((2, 8, 1))
        >>> prior = D.Independent(D.Normal(torch.zeros(1), 1.0), 1)
        >>> lik = lambda x, z: D.Normal(z, 1.0).log_prob(x).sum(-1)
        >>> h = train_avb(enc, critic, torch.randn(50, 1), lik, prior, steps=20)
        >>> sorted(h), len(h["objective"])
        (['critic_loss', 'objective', 't_mean'], 2)
    """
    return _train_avb(
        encoder, critic, x, log_likelihood, prior, steps, critic_steps,
        (batch_size,), lr_encoder, lr_critic, parameters, record_every, callback,
    )  # fmt: skip


def train_avb_seeds(
    make: Callable[[], tuple[nn.Module, nn.Module]],
    seeds: Iterable[int],
    x: torch.Tensor,
    log_likelihood: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    prior: D.Distribution,
    steps: int,
    critic_steps: int = 1,
    batch_size: int = 128,
    lr_encoder: float = 1e-3,
    lr_critic: float = 1e-3,
    record_every: int = 10,
    callback: Callable[[int, list[nn.Module]], None] | None = None,
) -> tuple[list[tuple[nn.Module, nn.Module]], dict[str, list[list[float]]]]:
    r"""Train one AVB encoder and critic per seed, all side by side, as :func:`train_avb`.

    For each seed, :func:`vbtutor.train.seed_everything` then ``make()`` builds that
    seed's pair. The pairs are stacked (:func:`vbtutor.nn.stack_networks`): every step
    each copy gets its own mini-batch and its own draws, with a leading seed axis
    ``(S, batch_size, ...)``, and each optimiser gets the gradient of the sum of the
    copies' losses, which for each copy is that of its own loss. Adam's update is
    element-wise, so each copy follows an independent run, for little more than the
    cost of one when the networks are small (the draws come from one stream, so a run is
    not bit-identical to :func:`train_avb`'s). Chapter: avb.

    Arguments:
        make: builds one ``(encoder, critic)`` pair, e.g. an :class:`ImplicitEncoder`
            and an MLP; every parameter must sit in an ``nn.Linear`` layer.
        seeds: at least one non-negative integer.
        x: observations ``(n, x_dim)``.
        log_likelihood: ``(x, z) -> log p(x | z)`` for x ``(S, B, x_dim)`` and z
            ``(S, B, z_dim)``, shape ``(S, B)``.
        prior, steps, critic_steps, batch_size, lr_encoder, lr_critic, record_every:
            as in :func:`train_avb`.
        callback: called at each record with the number of completed steps and the
            encoders as they stand, one per seed (copies, in the order of ``seeds``).

    Returns:
        ``(pairs, history)``: the trained ``(encoder, critic)`` pairs in the order of
        ``seeds``, and :func:`train_avb`'s history with one value per seed in each
        entry.

    Example:
        >>> prior = D.Independent(D.Normal(torch.zeros(1), 1.0), 1)
        >>> lik = lambda x, z: D.Normal(z, 1.0).log_prob(x).sum(-1)
        >>> make = lambda: (ImplicitEncoder(1, 1, 1, (8,)), MLP((2, 8, 1)))
        >>> pairs, h = train_avb_seeds(make, [0, 1], torch.randn(50, 1), lik, prior, 20)
        >>> len(pairs), len(h["objective"]), len(h["objective"][0])
        (2, 2, 2)
    """
    stacked, pairs = stack_seeded(make, seeds, ("encoder", "critic"))

    def encoders() -> list[nn.Module]:
        return [pair["encoder"] for pair in unstack_networks(stacked, pairs)]

    history = _train_avb(
        stacked["encoder"], stacked["critic"], x, log_likelihood, prior, steps,
        critic_steps, (len(pairs), batch_size), lr_encoder, lr_critic, None,
        record_every, callback and (lambda step: callback(step, encoders())),
    )  # fmt: skip
    unstack_networks(stacked, pairs)
    return [(pair["encoder"], pair["critic"]) for pair in pairs], history


def _train_avb(
    encoder: nn.Module,
    critic: nn.Module,
    x: torch.Tensor,
    log_likelihood: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    prior: D.Distribution,
    steps: int,
    critic_steps: int,
    batch_shape: tuple[int, ...],
    lr_encoder: float,
    lr_critic: float,
    parameters: Iterable[nn.Parameter] | None,
    record_every: int,
    callback: Callable[[int], None] | None,
) -> dict[str, list]:
    check_tensor("x", x, dim=2)
    check_positive_int("steps", steps)
    check_positive_int("critic_steps", critic_steps)
    check_positive_int("batch_size", batch_shape[-1])
    check_positive_int("record_every", record_every)
    check_positive("lr_encoder", lr_encoder)
    check_positive("lr_critic", lr_critic)
    if not isinstance(prior, D.Distribution) or len(prior.event_shape) != 1:
        raise ValueError("prior must be a torch Distribution with event_shape (z_dim,)")
    params = list(encoder.parameters() if parameters is None else parameters)
    if not params:
        raise ValueError("parameters is empty: nothing to train on the ELBO step")
    critic_params = list(critic.parameters())
    opt_encoder = torch.optim.Adam(params, lr=lr_encoder)
    opt_critic = torch.optim.Adam(critic_params, lr=lr_critic)
    history: dict[str, list[float]] = {"critic_loss": [], "objective": [], "t_mean": []}

    def batch() -> torch.Tensor:
        return x[torch.randint(0, len(x), batch_shape, device=x.device)]

    bar = trange(steps, desc="AVB", leave=False, disable=not show_progress())
    for step in bar:
        # stacked copies: each loss is one per copy, and the gradient of their sum
        # gives each copy the gradient of its own loss
        for _ in range(critic_steps):
            xb = batch()
            with torch.no_grad():
                z_q = encoder(xb)
            z_p = prior.sample(batch_shape).to(x.dtype)
            from_encoder = torch.cat([xb, z_q], -1)
            from_prior = torch.cat([xb, z_p], -1)
            critic_loss = log_ratio_loss(critic, from_encoder, from_prior)
            grads = torch.autograd.grad(critic_loss.sum(), critic_params)
            for p, g in zip(critic_params, grads, strict=True):
                p.grad = g
            opt_critic.step()
        xb = batch()
        z = encoder(xb)
        t = _log_ratio_output(critic, torch.cat([xb, z], -1))
        objective = (log_likelihood(xb, z) - t).mean(-1)
        grads = torch.autograd.grad(-objective.sum(), params)
        for p, g in zip(params, grads, strict=True):
            p.grad = g
        opt_encoder.step()
        if (step + 1) % record_every == 0:
            history["critic_loss"].append(critic_loss.tolist())
            history["objective"].append(objective.tolist())
            history["t_mean"].append(t.mean(-1).tolist())
            if callback is not None:
                callback(step + 1)
    return history
