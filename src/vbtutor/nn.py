"""Small neural-network building blocks: an MLP and an amortised diagonal-Gaussian encoder."""

from __future__ import annotations

import torch
from torch import distributions as D
from torch import nn

from ._checks import check_positive_int, check_tensor

__all__ = ["MLP", "GaussianEncoder"]


class MLP(nn.Sequential):
    """A fully connected network with ``tanh`` hidden activations and a linear output.

    Arguments:
        sizes: layer widths, input first and output last (at least two entries).
        activation: the hidden-layer activation module class.

    Example:
        >>> net = MLP((3, 16, 2))
        >>> net(torch.zeros(5, 3)).shape
        torch.Size([5, 2])
    """

    def __init__(self, sizes: tuple[int, ...], activation: type[nn.Module] = nn.Tanh):
        if len(sizes) < 2:
            raise ValueError(f"sizes needs an input and an output width, got {sizes!r}")
        for s in sizes:
            check_positive_int("sizes entries", s)
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
            layers.append(nn.Linear(a, b))
            if i < len(sizes) - 2:
                layers.append(activation())
        super().__init__(*layers)
        self.in_features, self.out_features = sizes[0], sizes[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_tensor("x", x, min_dim=1)
        if x.shape[-1] != self.in_features:
            raise ValueError(
                f"x must have last dimension {self.in_features}, got shape {tuple(x.shape)}"
            )
        return super().forward(x)


class GaussianEncoder(nn.Module):
    r"""An amortised diagonal-Gaussian posterior :math:`q_\phi(z|x)`.

    :math:`q_\phi(z|x) = \mathcal N(\mu_\phi(x), \mathrm{diag}\,\sigma_\phi^2(x))`, with mean and
    log standard deviation read off one network.

    With ``hidden=()`` the mean is linear in ``x``, which is the exact posterior's form for
    the linear-Gaussian model. Samples use the reparameterisation ``z = mu + sigma * eps``.

    Arguments:
        x_dim: input dimension.
        z_dim: latent dimension.
        hidden: hidden-layer widths (empty for a linear map).

    Example:
        >>> q = GaussianEncoder(x_dim=3, z_dim=2)(torch.zeros(4, 3))
        >>> q.rsample((7,)).shape
        torch.Size([7, 4, 2])
    """

    def __init__(self, x_dim: int, z_dim: int, hidden: tuple[int, ...] = ()):
        super().__init__()
        check_positive_int("z_dim", z_dim)
        self.net = MLP((x_dim, *hidden, 2 * z_dim))

    def forward(self, x: torch.Tensor) -> D.Distribution:
        mean, log_std = self.net(x).chunk(2, dim=-1)
        return D.Independent(D.Normal(mean, log_std.exp()), 1)
