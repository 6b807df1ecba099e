"""Small neural-network building blocks: an MLP, an amortised diagonal-Gaussian encoder, and
several seeds' copies of one network stacked so that one optimiser trains them side by side."""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import distributions as D
from torch import nn

from ._checks import check_positive_int, check_tensor

__all__ = [
    "MLP",
    "GaussianEncoder",
    "StackedLinear",
    "stack_networks",
    "unstack_networks",
]


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


# --- several seeds at once --------------------------------------------------------------


class StackedLinear(nn.Module):
    r"""``S`` linear layers of one shape applied side by side, layer ``s`` to slice ``s``.

    The input has shape ``(..., S, B, in)`` (the seed axis third from last, so that
    sample dimensions may lead) and the output ``(..., S, B, out)``, with
    ``out[..., s, :, :] = x[..., s, :, :] @ W_s.T + b_s``. Built by
    :func:`stack_networks`; the weights are stored as ``(S, in, out)`` and ``(S, 1, out)``.

    Arguments:
        layers: the ``S`` layers, all with a bias and the same ``in`` and ``out`` widths;
            their current weights are copied.

    Example:
        >>> layers = [nn.Linear(3, 2) for _ in range(4)]
        >>> StackedLinear(layers)(torch.zeros(4, 5, 3)).shape
        torch.Size([4, 5, 2])
    """

    def __init__(self, layers: Sequence[nn.Linear]):
        super().__init__()
        if len(layers) < 1 or not all(isinstance(m, nn.Linear) for m in layers):
            raise ValueError("layers must be a non-empty sequence of nn.Linear")
        if any(m.bias is None for m in layers):
            raise ValueError("layers must all have a bias")
        shapes = {tuple(m.weight.shape) for m in layers}
        if len(shapes) != 1:
            raise ValueError(f"layers must have one shape, got {sorted(shapes)}")
        weight = torch.stack([m.weight.detach() for m in layers]).transpose(1, 2)
        bias = torch.stack([m.bias.detach() for m in layers]).unsqueeze(1)
        self.weight = nn.Parameter(weight.clone())
        self.bias = nn.Parameter(bias.clone())
        self.n_stacked = len(layers)
        self.out_features, self.in_features = shapes.pop()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # shapes only: a NaN check in every layer would cost more than the layer
        if (
            not isinstance(x, torch.Tensor)
            or x.dim() < 3
            or x.shape[-3] != self.n_stacked
            or x.shape[-1] != self.in_features
        ):
            raise ValueError(
                f"x must have shape (..., {self.n_stacked}, batch, {self.in_features}),"
                f" got {tuple(getattr(x, 'shape', ()))}"
            )
        lead = x.shape[:-3]
        if not lead:
            return torch.baddbmm(self.bias, x, self.weight)
        # sample dimensions in front: one matrix product per copy, over all of them
        n, batch = self.n_stacked, x.shape[-2]
        rows = x.movedim(-3, 0).reshape(n, -1, self.in_features)
        out = torch.baddbmm(self.bias, rows, self.weight)
        return out.reshape(n, *lead, batch, self.out_features).movedim(0, -3)


def _linear_names(model: nn.Module) -> list[str]:
    return [name for name, m in model.named_modules() if isinstance(m, nn.Linear)]


def stack_networks(models: Sequence[nn.Module]) -> nn.Module:
    r"""One network that runs ``S`` copies of an architecture at once, one per seed.

    Each ``nn.Linear`` of a copy of ``models[0]`` is replaced by a :class:`StackedLinear`
    holding the corresponding layers of all ``S`` models, so every method of the model
    (``encode``, ``log_joint``, ...) works unchanged on inputs with a seed axis, of shape
    ``(S, B, ...)``: model ``s`` sees slice ``s``. Every parameter must belong to a linear
    layer, so no weight is shared between the copies. If the loss is the *sum* of the
    ``S`` models' own losses, each model's gradient is that of its own loss, and an
    element-wise optimiser such as Adam makes exactly the updates it would make on that
    model alone: ``S`` independent training runs for little more than the cost of one
    when the network is small. :func:`unstack_networks` copies the trained weights back.

    Arguments:
        models: at least one model, all of one class with parameters of the same shapes
            (typically the same constructor called after different seeds).

    Returns:
        A new model; the inputs are not modified.

    Example:
        >>> nets = [MLP((3, 8, 2)) for _ in range(3)]
        >>> stacked = stack_networks(nets)
        >>> x = torch.randn(3, 5, 3)
        >>> bool(torch.allclose(stacked(x)[1], nets[1](x[1]), atol=1e-6))
        True
    """
    if len(models) < 1 or not all(isinstance(m, nn.Module) for m in models):
        raise ValueError("models must be a non-empty sequence of nn.Module")
    first = models[0]
    shapes = {n: tuple(p.shape) for n, p in first.named_parameters()}
    for m in models[1:]:
        if (
            type(m) is not type(first)
            or {n: tuple(p.shape) for n, p in m.named_parameters()} != shapes
        ):
            raise ValueError(
                "models must share one class and one set of parameter shapes"
            )
    names = _linear_names(first)
    in_linear = {
        f"{n}.{kind}" if n else kind for n in names for kind in ("weight", "bias")
    }
    other = sorted(set(shapes) - in_linear)
    if other:
        raise ValueError(
            f"models must keep every parameter in nn.Linear layers, got {other}"
        )
    if isinstance(
        first, nn.Linear
    ):  # the model is one layer: nothing to copy around it
        return StackedLinear(models)
    stacked = copy.deepcopy(first)
    for name in names:
        parent, _, attr = name.rpartition(".")
        layers = [m.get_submodule(name) for m in models]
        setattr(stacked.get_submodule(parent), attr, StackedLinear(layers))
    return stacked


@torch.no_grad()
def unstack_networks(
    stacked: nn.Module, models: Sequence[nn.Module]
) -> list[nn.Module]:
    """Copy the weights of a :func:`stack_networks` model back into its ``S`` models.

    Arguments:
        stacked: the model returned by :func:`stack_networks` (trained, typically).
        models: the ``S`` models it was built from, in the same order; overwritten.

    Returns:
        ``models`` as a list, now holding the stacked model's weights.

    Example:
        >>> nets = [MLP((3, 2)) for _ in range(2)]
        >>> stacked = stack_networks(nets)
        >>> with torch.no_grad():
        ...     _ = stacked[0].bias.fill_(1.0)
        >>> unstack_networks(stacked, nets)[1][0].bias
        Parameter containing:
        tensor([1., 1.], requires_grad=True)
    """
    names = _linear_names(models[0]) if len(models) else []
    layers = [(n, stacked.get_submodule(n)) for n in names]
    if not layers or not all(
        isinstance(m, StackedLinear) and m.n_stacked == len(models) for _, m in layers
    ):
        raise ValueError(
            "stacked must come from stack_networks(models) with these models"
        )
    for s, model in enumerate(models):
        for name, layer in layers:
            target = model.get_submodule(name)
            target.weight.copy_(layer.weight[s].T)
            target.bias.copy_(layer.bias[s, 0])
    return list(models)
