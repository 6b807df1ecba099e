"""Normalising flows: invertible transforms with log-determinants, composed into densities.

Each transform is a ``torch.nn.Module`` with the methods of
``torch.distributions.transforms.Transform``: ``forward(x)``, ``inverse(y)`` and
``log_abs_det_jacobian(x, y)`` (one value per row). :class:`Flow` chains them on a
standard-normal base. The module also holds the planar-flow targets of Rezende and
Mohamed, a grid normaliser, the instantaneous change of variables solved with
``scipy.integrate.solve_ivp`` and a leapfrog integrator. Chapter: flows.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
from scipy.integrate import solve_ivp
from torch import distributions as D
from torch import nn
from torch.nn import functional as F

from ._checks import (
    check_finite,
    check_positive,
    check_positive_int,
    check_same_dtype,
    check_same_shape,
    check_tensor,
)
from .nn import MLP

__all__ = [
    "Affine",
    "Planar",
    "AdditiveCoupling",
    "AffineCoupling",
    "Flow",
    "planar_u_hat",
    "rezende_energy",
    "grid_log_normaliser",
    "planar_field_trace",
    "cnf_integrate",
    "leapfrog",
]


def _check_rows(name: str, value, dim: int) -> torch.Tensor:
    check_tensor(name, value, dim=2)
    if value.shape[-1] != dim:
        raise ValueError(f"{name} must have shape (n, {dim}), got {tuple(value.shape)}")
    return value


class _Transform(nn.Module):
    """Shared shape checks; subclasses define ``_forward``, ``_inverse``, ``_log_det``."""

    def __init__(self, dim: int):
        super().__init__()
        self.dim = check_positive_int("dim", dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``y = f(x)`` for a batch ``x`` of shape ``(n, dim)``."""
        return self._forward(_check_rows("x", x, self.dim))

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        """``x = f^{-1}(y)`` for a batch ``y`` of shape ``(n, dim)``."""
        return self._inverse(_check_rows("y", y, self.dim))

    def log_abs_det_jacobian(
        self, x: torch.Tensor, y: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``log |det df/dx|`` at each row of ``x`` (``y = f(x)`` may be passed along)."""
        _check_rows("x", x, self.dim)
        if y is not None:
            _check_rows("y", y, self.dim)
            if y.shape != x.shape:
                raise ValueError(
                    f"y must have the shape of x {tuple(x.shape)}, got {tuple(y.shape)}"
                )
        return self._log_det(x)

    def inverse_and_log_det(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x, log|det df/dx|)`` with ``x = f^{-1}(y)``, sharing work where possible."""
        _check_rows("y", y, self.dim)
        return self._inverse_and_log_det(y)

    def _inverse_and_log_det(self, y):
        x = self._inverse(y)
        return x, self._log_det(x)

    def _forward_and_log_det(self, x):
        return self._forward(x), self._log_det(x)


class Affine(_Transform):
    r"""Elementwise affine map :math:`y = \mathrm{loc} + \mathrm{scale} \odot x`.

    The scale may be negative (a decreasing map); the log-determinant is
    :math:`\sum_i \log|\mathrm{scale}_i|`.

    Arguments:
        loc: shift, shape ``(dim,)``.
        scale: nonzero scale, shape ``(dim,)``.

    References:
        Papamakarios et al., Normalizing flows for probabilistic modeling and
        inference, JMLR 2021, arXiv:1912.02762.

    Example:
        >>> t = Affine(torch.zeros(2), torch.tensor([2.0, -0.5]))
        >>> t.log_abs_det_jacobian(torch.zeros(1, 2)).tolist()
        [0.0]
    """

    def __init__(self, loc: torch.Tensor, scale: torch.Tensor):
        check_tensor("loc", loc, dim=1)
        check_tensor("scale", scale, dim=1)
        check_same_shape("scale", scale, "loc", loc)
        if (scale == 0).any() or not torch.isfinite(scale).all():
            raise ValueError("scale must have finite, nonzero entries")
        if not torch.isfinite(loc).all():
            raise ValueError("loc must be finite")
        super().__init__(loc.shape[0])
        self.loc = nn.Parameter(loc.clone())
        self.scale = nn.Parameter(scale.clone())

    def _forward(self, x):
        return self.loc + self.scale * x

    def _inverse(self, y):
        return (y - self.loc) / self.scale

    def _log_det(self, x):
        return self.scale.abs().log().sum().expand(x.shape[0])


def planar_u_hat(u: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    r"""Rezende and Mohamed's :math:`\hat u` with :math:`w^\top \hat u > -1`.

    :math:`\hat u = u + (m(w^\top u) - w^\top u)\, w / \|w\|^2` with
    :math:`m(a) = -1 + \log(1 + e^a)`, which makes the tanh planar map invertible.

    Arguments:
        u, w: vectors of shape ``(dim,)``.

    Returns:
        :math:`\hat u`, shape ``(dim,)``.

    References:
        Rezende and Mohamed, Variational inference with normalizing flows,
        ICML 2015, arXiv:1505.05770, appendix A.1.

    Example:
        >>> w = torch.tensor([1.0, 0.0])
        >>> bool(w @ planar_u_hat(torch.tensor([-5.0, 1.0]), w) > -1)
        True
    """
    check_tensor("u", u, dim=1)
    check_tensor("w", w, dim=1)
    check_same_shape("u", u, "w", w)
    check_same_dtype("u", u, "w", w)
    wu, ww = w @ u, w @ w
    # w = 0 makes the map a translation, invertible for any u: then u_hat = u
    safe = torch.where(ww > 0, ww, torch.ones_like(ww))
    return u + (F.softplus(wu) - 1 - wu) * w / safe


class Planar(_Transform):
    r"""Planar flow :math:`y = x + \hat u \tanh(w^\top x + b)`.

    :math:`\log|\det J| = \log|1 + \tanh'(w^\top x + b)\, w^\top \hat u|`. The
    inverse has no closed form; it is found by bisection on the scalar
    :math:`a = w^\top x`, which is monotone in :math:`w^\top y` because
    :math:`w^\top \hat u > -1`.

    Arguments:
        dim: dimension.
        generator: optional ``torch.Generator`` for the initial parameters.

    References:
        Rezende and Mohamed, Variational inference with normalizing flows,
        ICML 2015, arXiv:1505.05770.

    Example:
        >>> t = Planar(2).double()
        >>> x = torch.randn(4, 2, dtype=torch.float64)
        >>> bool(torch.allclose(t.inverse(t(x)), x))
        True
    """

    def __init__(self, dim: int, generator: torch.Generator | None = None):
        super().__init__(dim)
        self.u = nn.Parameter(0.5 * torch.randn(dim, generator=generator))
        self.w = nn.Parameter(0.5 * torch.randn(dim, generator=generator))
        self.b = nn.Parameter(torch.zeros(()))

    def u_hat(self) -> torch.Tensor:
        """The constrained :math:`\\hat u` actually used by the map."""
        return planar_u_hat(self.u, self.w)

    def _forward(self, x):
        return x + self.u_hat() * torch.tanh(x @ self.w + self.b)[:, None]

    def _inverse(self, y):
        u_hat = self.u_hat()
        c, target = self.w @ u_hat, y @ self.w
        lo, hi = target - c.abs() - 1, target + c.abs() + 1
        for _ in range(200 if y.dtype == torch.float64 else 100):
            mid = (lo + hi) / 2
            above = mid + c * torch.tanh(mid + self.b) > target
            lo, hi = torch.where(above, lo, mid), torch.where(above, mid, hi)
        a = (lo + hi) / 2
        return y - u_hat * torch.tanh(a + self.b)[:, None]

    def _log_det(self, x):
        return self._forward_and_log_det(x)[1]

    def _forward_and_log_det(self, x):
        u_hat = self.u_hat()
        h = torch.tanh(x @ self.w + self.b)
        # 1 + (1 - h^2) w.u_hat with 1 + w.u_hat = softplus(w.u) > 0 (1 when w = 0):
        # as h^2 + (1 - h^2) softplus(w.u) no cancellation turns a tiny determinant
        # into log 0
        one_plus = torch.where(
            self.w @ self.w > 0, F.softplus(self.w @ self.u), torch.ones(())
        )
        log_det = torch.log(h**2 + (1 - h**2) * one_plus)
        return x + u_hat * h[:, None], log_det


class _Coupling(_Transform):
    def __init__(self, mask: torch.Tensor, out_factor: int, hidden: Sequence[int]):
        check_tensor("mask", mask, dim=1)
        mask = mask.bool()
        if mask.all() or not mask.any():
            raise ValueError("mask must mark some but not all coordinates")
        super().__init__(mask.shape[0])
        self.register_buffer("mask", mask)
        sizes = (self.dim, *hidden, out_factor * self.dim)
        self.net = MLP(sizes, activation=nn.Tanh)


class AdditiveCoupling(_Coupling):
    r"""NICE additive coupling: :math:`y = x + (1 - m) \odot t(m \odot x)`.

    Coordinates with ``mask`` true pass unchanged and condition the shift of the
    others; the Jacobian is unit triangular, so the log-determinant is 0.

    Arguments:
        mask: boolean vector of shape ``(dim,)``, some but not all entries true.
        hidden: hidden widths of the shift network.

    References:
        Dinh, Krueger and Bengio, NICE: Non-linear independent components
        estimation, arXiv:1410.8516.

    Example:
        >>> t = AdditiveCoupling(torch.tensor([True, False]), hidden=(8,))
        >>> t.log_abs_det_jacobian(torch.randn(3, 2))
        tensor([0., 0., 0.])
    """

    def __init__(self, mask: torch.Tensor, hidden: Sequence[int] = (64,)):
        super().__init__(mask, 1, hidden)

    def _shift(self, x):
        return self.net(x * self.mask) * ~self.mask

    def _forward(self, x):
        return x + self._shift(x)

    def _inverse(self, y):
        return y - self._shift(y)

    def _log_det(self, x):
        return x.new_zeros(x.shape[0])


class AffineCoupling(_Coupling):
    r"""RealNVP affine coupling :math:`y = m \odot x + (1-m) \odot (x e^{s} + t)`.

    :math:`s, t` are functions of :math:`m \odot x` (with :math:`s` squashed by
    ``scale_bound * tanh``). The Jacobian is triangular with diagonal
    :math:`e^{s}` on the transformed coordinates and 1 elsewhere, so
    :math:`\log|\det J| = \sum_{i: m_i = 0} s_i`.

    Arguments:
        mask: boolean vector of shape ``(dim,)``, some but not all entries true.
        hidden: hidden widths of the network giving ``(s, t)``.
        scale_bound: positive bound on ``|s|``.

    References:
        Dinh, Sohl-Dickstein and Bengio, Density estimation using Real NVP,
        ICLR 2017, arXiv:1605.08803.

    Example:
        >>> t = AffineCoupling(torch.tensor([True, False]), hidden=(8,))
        >>> x = torch.randn(3, 2)
        >>> bool(torch.allclose(t.inverse(t(x)), x, atol=1e-5))
        True
    """

    def __init__(
        self,
        mask: torch.Tensor,
        hidden: Sequence[int] = (64,),
        scale_bound: float = 2.0,
    ):
        check_positive("scale_bound", scale_bound)
        super().__init__(mask, 2, hidden)
        self.scale_bound = float(scale_bound)

    def _s_t(self, x):
        s, t = self.net(x * self.mask).chunk(2, dim=-1)
        s = self.scale_bound * torch.tanh(s / self.scale_bound)
        return s * ~self.mask, t * ~self.mask

    def _forward(self, x):
        s, t = self._s_t(x)
        return x * s.exp() + t

    def _inverse(self, y):
        s, t = self._s_t(y)
        return (y - t) * (-s).exp()

    def _log_det(self, x):
        return self._s_t(x)[0].sum(-1)

    def _forward_and_log_det(self, x):
        s, t = self._s_t(x)
        return x * s.exp() + t, s.sum(-1)

    def _inverse_and_log_det(self, y):
        s, t = self._s_t(y)  # the conditioning coordinates are unchanged
        return (y - t) * (-s).exp(), s.sum(-1)


class Flow(nn.Module):
    r"""A chain :math:`f_K \circ \dots \circ f_1` on a standard-normal base.

    :math:`\log q_K(z_K) = \log q_0(z_0) - \sum_k \log|\det J_{f_k}(z_{k-1})|`.

    Arguments:
        transforms: the transforms ``f_1, ..., f_K`` (all of the same ``dim``).
        dim: the dimension, needed when ``transforms`` is empty.

    References:
        Rezende and Mohamed, arXiv:1505.05770; Papamakarios et al.,
        arXiv:1912.02762.

    Example:
        >>> flow = Flow([Affine(torch.zeros(1), torch.tensor([2.0]))])
        >>> flow.log_prob(torch.zeros(1, 1)).item() == D.Normal(0, 2).log_prob(
        ...     torch.tensor(0.0)).item()
        True
    """

    def __init__(self, transforms: Sequence[nn.Module], dim: int | None = None):
        super().__init__()
        transforms = list(transforms)
        for t in transforms:
            if not isinstance(t, _Transform):
                raise ValueError(
                    "transforms must hold vbtutor.flows transforms, "
                    f"got {type(t).__name__}"
                )
        dims = {t.dim for t in transforms}
        if dim is not None:
            dims.add(check_positive_int("dim", dim))
        if len(dims) != 1:
            raise ValueError(
                f"transforms must share one dim (or pass dim), got {sorted(dims)}"
            )
        self.dim = dims.pop()
        self.transforms = nn.ModuleList(transforms)

    def base(self, like: torch.Tensor | None = None) -> D.Distribution:
        """The standard-normal base :math:`q_0` (on ``like``'s device and dtype)."""
        ref = like if like is not None else next(self.parameters(), torch.zeros(()))
        zero = torch.zeros(self.dim, dtype=ref.dtype, device=ref.device)
        return D.Independent(D.Normal(zero, torch.ones_like(zero)), 1)

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Push base points through the chain: ``(z_K, sum_k log|det J_k|)``."""
        _check_rows("z", z, self.dim)
        log_det = z.new_zeros(z.shape[0])
        for t in self.transforms:
            z, ld = t._forward_and_log_det(z)
            log_det = log_det + ld
        return z, log_det

    def inverse(self, x: torch.Tensor) -> torch.Tensor:
        """Pull data points back to the base: ``z_0``."""
        _check_rows("x", x, self.dim)
        for t in reversed(self.transforms):
            x = t.inverse(x)
        return x

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """:math:`\\log q_K(x)` by inverting the chain (needs every inverse)."""
        _check_rows("x", x, self.dim)
        log_det = x.new_zeros(x.shape[0])
        for t in reversed(self.transforms):
            x, ld = t._inverse_and_log_det(x)
            log_det = log_det + ld
        return self.base(x).log_prob(x) - log_det

    def sample_and_log_prob(
        self, n: int, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` draws from :math:`q_K` and their log-densities, without inverses."""
        check_positive_int("n", n)
        base = self.base()
        ref = base.mean
        z0 = torch.randn(n, self.dim, generator=generator, dtype=ref.dtype)
        z0 = z0.to(ref.device)
        z, log_det = self.forward(z0)
        return z, base.log_prob(z0) - log_det


def rezende_energy(z: torch.Tensor, which: int) -> torch.Tensor:
    r"""The 2-D energies :math:`U_1, \dots, U_4` of Rezende and Mohamed (table 1).

    The unnormalised target is :math:`p(z) \propto e^{-U(z)}`.

    Arguments:
        z: points, shape ``(n, 2)``.
        which: 1, 2, 3 or 4.

    Returns:
        :math:`U(z)`, shape ``(n,)``.

    References:
        Rezende and Mohamed, arXiv:1505.05770, table 1.

    Example:
        >>> rezende_energy(torch.tensor([[0.0, 0.0]]), 2)
        tensor([0.])
    """
    _check_rows("z", z, 2)
    if which not in (1, 2, 3, 4):
        raise ValueError(f"which must be 1, 2, 3 or 4, got {which!r}")
    z1, z2 = z[:, 0], z[:, 1]
    w1 = torch.sin(2 * math.pi * z1 / 4)
    if which == 1:
        ring = 0.5 * ((z.norm(dim=-1) - 2) / 0.4) ** 2
        modes = torch.stack(
            [-0.5 * ((z1 - 2) / 0.6) ** 2, -0.5 * ((z1 + 2) / 0.6) ** 2]
        )
        return ring - torch.logsumexp(modes, 0)
    if which == 2:
        return 0.5 * ((z2 - w1) / 0.4) ** 2
    if which == 3:
        w2 = 3 * torch.exp(-0.5 * ((z1 - 1) / 0.6) ** 2)
        a = -0.5 * ((z2 - w1) / 0.35) ** 2
        b = -0.5 * ((z2 - w1 + w2) / 0.35) ** 2
        return -torch.logsumexp(torch.stack([a, b]), 0)
    w3 = 3 * torch.sigmoid((z1 - 1) / 0.3)
    a = -0.5 * ((z2 - w1) / 0.4) ** 2
    b = -0.5 * ((z2 - w1 + w3) / 0.35) ** 2
    return -torch.logsumexp(torch.stack([a, b]), 0)


def grid_log_normaliser(
    log_density: Callable[[torch.Tensor], torch.Tensor],
    limit: float = 5.0,
    n: int = 400,
    dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    r""":math:`\log \int e^{\ell(z)} dz` over the square :math:`[-L, L]^2` (midpoint rule).

    Arguments:
        log_density: maps points of shape ``(m, 2)`` to unnormalised log-densities.
        limit: half-width ``L`` of the square, positive.
        n: grid points per axis, at least 2.
        dtype: dtype of the grid.

    Returns:
        The log-normaliser, a 0-d tensor.

    Example:
        >>> normal = lambda z: -0.5 * (z**2).sum(-1)
        >>> round(grid_log_normaliser(normal, 8.0).item(), 6) == round(math.log(2 * math.pi), 6)
        True
    """
    check_positive("limit", limit)
    check_positive_int("n", n)
    if n < 2:
        raise ValueError(f"n must be at least 2, got {n}")
    h = 2 * limit / n
    axis = torch.linspace(-limit + h / 2, limit - h / 2, n, dtype=dtype)
    grid = torch.cartesian_prod(axis, axis)
    return torch.logsumexp(log_density(grid), 0) + 2 * math.log(h)


def planar_field_trace(
    z: torch.Tensor, u: torch.Tensor, w: torch.Tensor, b: torch.Tensor | float
) -> torch.Tensor:
    r"""Trace of the Jacobian of :math:`f(z) = u \tanh(w^\top z + b)`.

    :math:`\mathrm{Tr}(\partial f / \partial z) = \tanh'(w^\top z + b)\, u^\top w`.

    Arguments:
        z: points, shape ``(n, d)``.
        u, w: vectors of shape ``(d,)``.
        b: scalar bias.

    Returns:
        The trace at each point, shape ``(n,)``.

    References:
        Chen et al., Neural ordinary differential equations, NeurIPS 2018,
        arXiv:1806.07366, section 4.1.

    Example:
        >>> planar_field_trace(torch.zeros(1, 2), torch.ones(2), torch.ones(2), 0.0)
        tensor([2.])
    """
    check_tensor("u", u, dim=1)
    check_tensor("w", w, dim=1)
    check_same_shape("w", w, "u", u)
    _check_rows("z", z, u.shape[0])
    for name, value in (("u", u), ("w", w)):
        check_same_dtype(name, value, "z", z)
    check_finite("b", b)
    return (1 - torch.tanh(z @ w + b) ** 2) * (u @ w)


def _trace_of_jacobian(field, z):
    with torch.enable_grad():
        z = z.detach().requires_grad_(True)
        f = field(z)
        trace = torch.zeros(z.shape[0], dtype=z.dtype)
        for i in range(z.shape[1]):
            (g,) = torch.autograd.grad(f[:, i].sum(), z, retain_graph=True)
            trace = trace + g[:, i]
    return f.detach(), trace.detach()


def cnf_integrate(
    field: Callable[[torch.Tensor], torch.Tensor],
    z0: torch.Tensor,
    t1: float = 1.0,
    rtol: float = 1e-8,
    atol: float = 1e-10,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Solve :math:`dz/dt = f(z)` with :math:`d \log p / dt = -\mathrm{Tr}(\partial f/\partial z)`.

    The field acts row by row (no coupling between rows); the trace is exact, by
    one autograd pass per dimension. Integration uses ``scipy.integrate.solve_ivp``
    (RK45) in float64.

    Arguments:
        field: maps ``(n, d)`` points to ``(n, d)`` velocities (torch, differentiable).
        z0: starting points, shape ``(n, d)``.
        t1: end time, positive.
        rtol, atol: solver tolerances.

    Returns:
        ``(z1, delta)`` with ``delta = log p_1(z_1) - log p_0(z_0)`` per row.

    References:
        Chen et al., arXiv:1806.07366; Grathwohl et al., FFJORD, ICLR 2019,
        arXiv:1810.01367.

    Example:
        >>> z1, delta = cnf_integrate(lambda z: -z, torch.ones(1, 2, dtype=torch.float64))
        >>> round(delta.item(), 6)
        2.0
    """
    check_tensor("z0", z0, dim=2)
    check_positive("t1", t1)
    n, d = z0.shape

    def rhs(_t, state):
        z = torch.from_numpy(state[: n * d].reshape(n, d).copy())
        f, trace = _trace_of_jacobian(field, z)
        return np.concatenate([f.numpy().ravel(), -trace.numpy()])

    start = np.concatenate([z0.detach().double().cpu().numpy().ravel(), np.zeros(n)])
    sol = solve_ivp(rhs, (0.0, float(t1)), start, rtol=rtol, atol=atol)
    end = torch.from_numpy(sol.y[:, -1].copy()).to(z0.dtype)
    return end[: n * d].reshape(n, d), end[n * d :]


def leapfrog(
    q: torch.Tensor,
    p: torch.Tensor,
    grad_potential: Callable[[torch.Tensor], torch.Tensor],
    step: float,
    n_steps: int = 1,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Leapfrog steps for :math:`H(q, p) = U(q) + \|p\|^2/2` (volume preserving).

    Each step is three shears (half kick, drift, half kick), each an additive
    coupling with unit Jacobian determinant, so :math:`\log|\det J| = 0`.

    Arguments:
        q, p: positions and momenta, shape ``(n, d)`` each.
        grad_potential: maps ``q`` to :math:`\nabla U(q)`.
        step: step size, positive.
        n_steps: number of steps, at least 1.

    Returns:
        ``(q, p)`` after ``n_steps`` steps.

    References:
        Neal, MCMC using Hamiltonian dynamics, arXiv:1206.1901; Chen et al.,
        arXiv:1806.07366 (Hamiltonian CNF).

    Example:
        >>> q, p = leapfrog(torch.ones(1, 1), torch.zeros(1, 1), lambda q: q, 0.1, 10)
        >>> round((0.5 * q**2 + 0.5 * p**2).item(), 2)
        0.5
    """
    check_tensor("q", q, dim=2)
    check_tensor("p", p, dim=2)
    check_same_shape("p", p, "q", q)
    check_positive("step", step)
    check_positive_int("n_steps", n_steps)
    for _ in range(n_steps):
        p = p - 0.5 * step * grad_potential(q)
        q = q + step * p
        p = p - 0.5 * step * grad_potential(q)
    return q, p
