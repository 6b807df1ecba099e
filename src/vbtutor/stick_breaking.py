"""The stick-breaking VAE: Kumaraswamy posteriors, their KL to a Beta, and stick weights."""

from __future__ import annotations

import math

import torch
from scipy import integrate, special
from torch import distributions as D
from torch.nn import functional as F

from ._checks import check_positive, check_positive_int, check_tensor
from .models import VAE
from .nn import MLP

__all__ = [
    "KL_TERMS",
    "Kumaraswamy",
    "kl_kumaraswamy_beta",
    "kl_kumaraswamy_beta_quad",
    "stick_breaking",
    "gem_mean",
    "StickBreakingVAE",
]

#: Terms of the series for E[log(1 - v)] used by the registered KL (the authors' choice).
KL_TERMS = 10

_EULER = 0.5772156649015329
_LOG2 = 0.6931471805599453


def _log1mexp(x: torch.Tensor) -> torch.Tensor:
    """log(1 - exp(x)) for x <= 0, accurate at both ends (Maechler 2012)."""
    near_zero = x > -_LOG2
    # each branch sees only the inputs it is accurate for, so no NaN gradient leaks
    small = torch.log(-torch.expm1(torch.where(near_zero, x, -_LOG2)))
    large = torch.log1p(-torch.exp(torch.where(near_zero, -_LOG2, x)))
    return torch.where(near_zero, small, large)


def _floating(*values) -> tuple[torch.Tensor, ...]:
    """Broadcast numbers, arrays and tensors to tensors of one floating dtype."""
    tensors = D.utils.broadcast_all(
        *(
            v if isinstance(v, (torch.Tensor, int, float)) else torch.as_tensor(v)
            for v in values
        )
    )
    if not tensors[0].is_floating_point():
        tensors = tuple(t.to(torch.get_default_dtype()) for t in tensors)
    return tensors


class Kumaraswamy(D.Kumaraswamy):
    r"""torch's Kumaraswamy distribution on (0, 1), sampled by inverting its CDF.

    Its density is :math:`q(v) = a b\, v^{a-1} (1 - v^a)^{b-1}` and its CDF
    :math:`F(v) = 1 - (1 - v^a)^b` has the closed-form inverse, so a draw
    :math:`v = (1 - u^{1/b})^{1/a}` with :math:`u \sim \mathcal U(0, 1)` (this is
    :math:`F^{-1}(1 - u)`, and :math:`1 - u` is uniform too) is a differentiable
    function of :math:`(a, b)`: the reparameterisation trick applies. This class is
    ``torch.distributions.Kumaraswamy`` (whose mean, variance and entropy it keeps)
    with that sampler written out as the chapter derives it, ``a`` and ``b`` as names
    for torch's ``concentration1`` and ``concentration0``, and the density, CDF and
    inverse CDF evaluated in log space (``log1p``, ``expm1``). Draws are clipped to
    ``[tiny, 1 - eps]`` of the dtype so that ``log v`` and ``log(1 - v)`` stay finite;
    they are torch's draws from the same random stream. Chapter: sbvae.

    Arguments:
        a: first shape parameter, positive (a tensor, an array or a number).
        b: second shape parameter, positive; ``a`` and ``b`` broadcast.

    References:
        Kumaraswamy (1980), J. Hydrology 46, 79-88; Nalisnick & Smyth (2016),
        "Stick-breaking variational autoencoders", arXiv:1605.06197; survey
        (xu2026survey) eqs. 52-53.

    Example:
        >>> q = Kumaraswamy(torch.tensor([2.0, 0.5]), torch.tensor([3.0, 0.5]))
        >>> v = q.rsample((4,))
        >>> v.shape, bool(((v > 0) & (v < 1)).all())
        (torch.Size([4, 2]), True)
        >>> q.cdf(q.icdf(torch.tensor([0.3, 0.9])))
        tensor([0.3000, 0.9000])
    """

    def __init__(
        self,
        a: torch.Tensor | float,
        b: torch.Tensor | float,
        validate_args: bool | None = None,
    ):
        check_positive("a", a)
        check_positive("b", b)
        super().__init__(*_floating(a, b), validate_args=validate_args)

    @property
    def a(self) -> torch.Tensor:
        return self.concentration1

    @property
    def b(self) -> torch.Tensor:
        return self.concentration0

    def expand(self, batch_shape, _instance=None) -> Kumaraswamy:
        new = self._get_checked_instance(Kumaraswamy, _instance)
        return super().expand(batch_shape, _instance=new)

    def _clip(self, v: torch.Tensor) -> torch.Tensor:
        info = torch.finfo(v.dtype)
        return v.clamp(info.tiny, 1 - info.eps)

    def rsample(self, sample_shape: torch.Size | tuple = ()) -> torch.Tensor:
        """Reparameterised draws ``(1 - u^(1/b))^(1/a)``, u uniform from torch's stream."""
        shape = self._extended_shape(torch.Size(sample_shape))
        u = torch.rand(shape, dtype=self.a.dtype, device=self.a.device)
        log_v = _log1mexp(torch.log(u) / self.b) / self.a
        return self._clip(log_v.exp())

    def sample(self, sample_shape: torch.Size | tuple = ()) -> torch.Tensor:
        """Draws of :meth:`rsample`, without gradients (torch's class transforms its own)."""
        with torch.no_grad():
            return self.rsample(sample_shape)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        """log a + log b + (a - 1) log v + (b - 1) log(1 - v^a)."""
        if self._validate_args:
            self._validate_sample(value)
        log_v = value.log()
        log1m_va = _log1mexp(self.a * log_v)
        return (
            self.a.log() + self.b.log() + (self.a - 1) * log_v + (self.b - 1) * log1m_va
        )

    def cdf(self, value: torch.Tensor) -> torch.Tensor:
        """F(v) = 1 - (1 - v^a)^b."""
        if self._validate_args:
            self._validate_sample(value)
        log1m_va = _log1mexp(self.a * value.log())
        return -torch.expm1(self.b * log1m_va)

    def icdf(self, value: torch.Tensor) -> torch.Tensor:
        """F^{-1}(p) = (1 - (1 - p)^(1/b))^(1/a)."""
        if self._validate_args:
            self._validate_sample(value)
        return torch.exp(_log1mexp(torch.log1p(-value) / self.b) / self.a)


def kl_kumaraswamy_beta(
    a: torch.Tensor | float,
    b: torch.Tensor | float,
    alpha: torch.Tensor | float,
    beta: torch.Tensor | float,
    terms: int = KL_TERMS,
) -> torch.Tensor:
    r""":math:`\mathrm{KL}(\mathrm{Kumaraswamy}(a, b) \,\|\, \mathrm{Beta}(\alpha, \beta))`,
    with :math:`\mathbb E[\log(1 - v)]` as a series truncated after ``terms`` terms.

    .. math::
        \frac{a - \alpha}{a}\Big(-\gamma - \psi(b) - \frac1b\Big) + \log ab
        + \log B(\alpha, \beta) - \frac{b - 1}{b}
        + (\beta - 1)\, b \sum_{m=1}^{M} \frac{B(m/a, b)}{m + ab}.

    The first bracket is :math:`a\,\mathbb E_q[\log v]` (exact); the sum is
    :math:`-\mathbb E_q[\log(1 - v)]` from the Taylor series
    :math:`\log(1 - v) = -\sum_m v^m / m` and the moments
    :math:`\mathbb E_q[v^m] = b\,B(1 + m/a, b)`. Its terms are positive and decay
    like :math:`m^{-(b + 1)}`, so truncating underestimates the sum, slowly converging
    for small ``b``; for :math:`\beta > 1` the truncated KL is too small.
    Chapter: sbvae.

    Arguments:
        a, b: the Kumaraswamy's shape parameters, positive.
        alpha, beta: the Beta's parameters, positive. All four broadcast.
        terms: number ``M`` of series terms kept, at least 1.

    Returns:
        The KL in nats, of the broadcast shape.

    References:
        Nalisnick & Smyth (2016), arXiv:1605.06197 (the series and M = 10 terms);
        survey (xu2026survey) section 9, which leaves this term out.

    Example:
        >>> kl_kumaraswamy_beta(2.0, 1.0, 2.0, 1.0)  # Kumaraswamy(a, 1) = Beta(a, 1)
        tensor(0.)
    """
    for name, value in (("a", a), ("b", b), ("alpha", alpha), ("beta", beta)):
        check_positive(name, value)
    check_positive_int("terms", terms)
    a, b, alpha, beta = _floating(a, b, alpha, beta)
    m = torch.arange(1, terms + 1, dtype=a.dtype, device=a.device)
    aa, bb = a.unsqueeze(-1), b.unsqueeze(-1)
    log_beta_fn = torch.lgamma(m / aa) + torch.lgamma(bb) - torch.lgamma(m / aa + bb)
    series = (torch.exp(log_beta_fn) / (m + aa * bb)).sum(-1)
    log_beta_prior = (
        torch.lgamma(alpha) + torch.lgamma(beta) - torch.lgamma(alpha + beta)
    )
    return (
        (a - alpha) / a * (-_EULER - torch.digamma(b) - 1 / b)
        + torch.log(a * b)
        + log_beta_prior
        - (b - 1) / b
        + (beta - 1) * b * series
    )


def kl_kumaraswamy_beta_quad(a: float, b: float, alpha: float, beta: float) -> float:
    r"""The same KL by adaptive quadrature, without a series: a reference value.

    Under :math:`q` the survival level :math:`s = 1 - F(v)` is uniform, and
    :math:`v = (1 - s^{1/b})^{1/a}`, so

    .. math::
        \mathrm{KL} = \int_0^1 \big[\log q(v(s)) - \log p(v(s))\big]\, ds, \qquad
        \log q(v(s)) = \log ab + (a - 1)\log v + (1 - 1/b) \log s .

    In this form the integrand has only integrable logarithmic singularities at the
    ends, which ``scipy.integrate.quad`` handles for any positive ``b``, including the
    small values where the series converges slowly. Chapter: sbvae.

    Arguments:
        a, b: the Kumaraswamy's shape parameters, positive numbers.
        alpha, beta: the Beta's parameters, positive numbers.

    Returns:
        The KL in nats, a float.

    Example:
        >>> round(kl_kumaraswamy_beta_quad(1.0, 2.0, 1.0, 5.0), 4)  # log(2/5) - 1 + 5/2
        0.5837
    """
    values = (("a", a), ("b", b), ("alpha", alpha), ("beta", beta))
    for name, value in values:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{name} must be a number, got {type(value).__name__}")
        check_positive(name, value)
    a, b, alpha, beta = (float(value) for _, value in values)
    log_norm = math.log(a * b) + special.betaln(alpha, beta)

    def log1mexp(x: float) -> float:
        if x > -_LOG2:
            return math.log(-math.expm1(x))
        return math.log1p(-math.exp(x))

    def log_ratio(s: float) -> float:
        x = math.log(s) / b  # log of t = s^(1/b)
        log_v = log1mexp(x) / a
        # for tiny t, 1 - v = t / a to double precision (and log v rounds to 0)
        log_1mv = x - math.log(a) if x < -40 else log1mexp(log_v)
        log_q_minus_norm = (a - alpha) * log_v + (1 - 1 / b) * math.log(s)
        return log_norm + log_q_minus_norm - (beta - 1) * log_1mv

    return integrate.quad(log_ratio, 0, 1, limit=500)[0]


@D.register_kl(Kumaraswamy, D.Beta)
def _kl_kumaraswamy_beta(p: Kumaraswamy, q: D.Beta) -> torch.Tensor:
    return kl_kumaraswamy_beta(p.a, p.b, q.concentration1, q.concentration0, KL_TERMS)


def stick_breaking(v: torch.Tensor) -> torch.Tensor:
    r"""Stick weights from stick fractions, with the remainder as the last weight.

    For fractions :math:`v_1, \dots, v_{K-1}` in [0, 1], returns the ``K`` weights
    :math:`\pi_k = v_k \prod_{j<k}(1 - v_j)` for :math:`k < K` and
    :math:`\pi_K = \prod_{j<K}(1 - v_j)`, what is left of the stick. The first
    ``K - 1`` weights sum to :math:`1 - \pi_K \le 1`; all ``K`` sum to one.
    Chapter: sbvae.

    Arguments:
        v: fractions in [0, 1], shape ``(..., K - 1)`` with ``K - 1 >= 1``.

    Returns:
        Weights of shape ``(..., K)``.

    References:
        Sethuraman (1994), Statistica Sinica 4, 639-650; Nalisnick & Smyth (2016),
        arXiv:1605.06197; survey (xu2026survey) eq. 50.

    Example:
        >>> stick_breaking(torch.tensor([0.5, 0.5, 0.5]))
        tensor([0.5000, 0.2500, 0.1250, 0.1250])
    """
    check_tensor("v", v, min_dim=1)
    if v.shape[-1] < 1:
        raise ValueError(
            f"v must have at least one fraction, got shape {tuple(v.shape)}"
        )
    if bool(((v < 0) | (v > 1)).any()):
        raise ValueError("v must lie in [0, 1]")
    remaining = torch.cumprod(1 - v, dim=-1)  # what is left after each break
    before = torch.cat([torch.ones_like(v[..., :1]), remaining[..., :-1]], dim=-1)
    return torch.cat([v * before, remaining[..., -1:]], dim=-1)


def gem_mean(alpha: float, truncation: int) -> torch.Tensor:
    r"""Expected stick weights under :math:`v_k \sim \mathrm{Beta}(1, \alpha)`, truncated.

    By independence, :math:`\mathbb E[\pi_k] = \frac{1}{1+\alpha}
    \big(\frac{\alpha}{1+\alpha}\big)^{k-1}` for :math:`k < K`, and the remainder has
    :math:`\mathbb E[\pi_K] = \big(\frac{\alpha}{1+\alpha}\big)^{K-1}`. Chapter: sbvae.

    Arguments:
        alpha: the concentration, positive; larger values spread mass over more sticks.
        truncation: the number of weights ``K``, at least 2.

    Returns:
        A float64 tensor of shape ``(K,)`` summing to one.

    References:
        Sethuraman (1994), Statistica Sinica 4, 639-650.

    Example:
        >>> gem_mean(1.0, 3)
        tensor([0.5000, 0.2500, 0.2500], dtype=torch.float64)
    """
    check_positive("alpha", alpha)
    check_positive_int("truncation", truncation)
    if truncation < 2:
        raise ValueError(f"truncation must be at least 2, got {truncation}")
    keep = alpha / (1 + alpha)
    k = torch.arange(truncation, dtype=torch.float64)
    weights = (1 - keep) * keep**k
    weights[-1] = keep ** (truncation - 1)
    return weights


class StickBreakingVAE(VAE):
    r"""The stick-breaking VAE for binary data, truncated at ``K`` sticks.

    The latent variable is the vector of ``K - 1`` stick fractions ``v``:
    :math:`q_\phi(v|x) = \prod_k \mathrm{Kumaraswamy}(v_k; a_k(x), b_k(x))` (``a`` and
    ``b`` are softplus outputs of the encoder), the prior is
    :math:`p(v) = \prod_k \mathrm{Beta}(v_k; 1, \alpha_0)`, and the decoder reads the
    ``K`` stick weights :math:`\pi = ` :func:`stick_breaking` ``(v)``, with independent
    Bernoulli pixels. Prior and posterior are densities of the same variable ``v``, so
    :meth:`log_joint` minus ``q.log_prob`` is a valid importance weight for
    :func:`vbtutor.bounds.iwae`. ``D.kl_divergence(q, prior)`` uses
    :func:`kl_kumaraswamy_beta` with :data:`KL_TERMS` terms, which makes
    :func:`vbtutor.bounds.elbo_split_one` and :func:`vbtutor.train.fit_vae` work
    unchanged. Chapter: sbvae.

    Arguments:
        x_dim: number of pixels.
        truncation: number of sticks ``K`` (the decoder's input size), at least 2.
        hidden: hidden-layer widths of encoder and decoder.
        alpha0: concentration of the Beta(1, alpha0) prior on each fraction, positive.

    References:
        Nalisnick & Smyth (2016), arXiv:1605.06197.

    Example:
        >>> vae = StickBreakingVAE(x_dim=64, truncation=5, hidden=(16,))
        >>> x = torch.bernoulli(torch.full((3, 64), 0.5))
        >>> v = vae.encode(x).rsample((2,))
        >>> v.shape, vae.log_joint(x, v).shape
        (torch.Size([2, 3, 4]), torch.Size([2, 3]))
    """

    def __init__(
        self,
        x_dim: int,
        truncation: int,
        hidden: tuple[int, ...] = (100, 100),
        alpha0: float = 5.0,
    ):
        check_positive_int("truncation", truncation)
        if truncation < 2:
            raise ValueError(f"truncation must be at least 2, got {truncation}")
        check_positive("alpha0", alpha0)
        super().__init__(x_dim, truncation, hidden)
        self.truncation, self.z_dim, self.alpha0 = truncation, truncation - 1, alpha0
        self.encoder = MLP((x_dim, *hidden, 2 * (truncation - 1)))

    def encode(self, x: torch.Tensor) -> D.Distribution:
        """q_phi(v|x): independent Kumaraswamy fractions, batch shape ``x.shape[:-1]``."""
        raw_a, raw_b = self.encoder(x).chunk(2, dim=-1)
        return D.Independent(Kumaraswamy(F.softplus(raw_a), F.softplus(raw_b)), 1)

    def prior(self) -> D.Distribution:
        """p(v) = prod_k Beta(v_k; 1, alpha0)."""
        like = next(self.parameters())
        ones = torch.ones(self.z_dim, dtype=like.dtype, device=like.device)
        return D.Independent(D.Beta(ones, self.alpha0 * ones), 1)

    def likelihood(self, v: torch.Tensor) -> D.Distribution:
        """p_theta(x|v): Bernoulli pixels with logits decoder(stick_breaking(v))."""
        check_tensor("v", v, min_dim=1)
        if v.shape[-1] != self.z_dim:
            raise ValueError(
                f"v must have last dimension {self.z_dim}, got {tuple(v.shape)}"
            )
        return D.Independent(D.Bernoulli(logits=self.decoder(stick_breaking(v))), 1)
