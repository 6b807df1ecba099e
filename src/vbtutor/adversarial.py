"""Discriminators and adversarial training: the VAE-GAN of Larsen et al. (2016)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import distributions as D
from torch import nn
from torch.nn import functional as F
from tqdm.auto import trange

from ._checks import check_positive, check_positive_int, check_tensor
from .models import VAE
from .nn import MLP, unstack_networks
from .train import show_progress, stack_seeded, unvalidated

__all__ = ["Discriminator", "vaegan_losses", "train_vaegan", "train_vaegan_seeds"]


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
