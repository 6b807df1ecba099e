"""Latent-variable models: the linear-Gaussian yardstick with exact marginals, the digits VAE."""

from __future__ import annotations

import math

import torch
from torch import distributions as D
from torch import nn

from ._checks import check_positive, check_positive_int, check_tensor
from .nn import MLP, GaussianEncoder

__all__ = [
    "LinearGaussian",
    "ppca_mle",
    "VAE",
    "BernoulliVAE",
    "GaussianVAE",
    "GMVAE",
]


def _standard_normal(z_dim: int, like: torch.Tensor) -> D.Distribution:
    zeros = torch.zeros(z_dim, dtype=like.dtype, device=like.device)
    return D.Independent(D.Normal(zeros, torch.ones_like(zeros)), 1)


class LinearGaussian(nn.Module):
    r"""The linear-Gaussian latent-variable model (probabilistic PCA).

    :math:`p(z) = \mathcal N(0, I_d)`, :math:`p_\theta(x|z) = \mathcal N(Wz + b, \sigma^2 I_D)`,
    so :math:`p_\theta(x) = \mathcal N(b, WW^\top + \sigma^2 I)` and
    :math:`p_\theta(z|x) = \mathcal N(M^{-1}W^\top(x-b), \sigma^2 M^{-1})` with
    :math:`M = W^\top W + \sigma^2 I`. Every bound in the book is measured against
    these exact answers. Chapters: mle_latent, elbo, iwae.

    Arguments:
        W: loading matrix, shape ``(D, d)``.
        b: offset, shape ``(D,)``.
        sigma: observation noise standard deviation, positive.

    References:
        Tipping & Bishop (1999), Probabilistic principal component analysis.

    Example:
        >>> model = LinearGaussian.random(x_dim=3, z_dim=2, sigma=0.5, seed=0)
        >>> x = model.sample(4)
        >>> model.log_marginal(x).shape
        torch.Size([4])
    """

    def __init__(self, W: torch.Tensor, b: torch.Tensor, sigma: float | torch.Tensor):
        super().__init__()
        check_tensor("W", W, dim=2)
        check_tensor("b", b, dim=1)
        if b.shape[0] != W.shape[0]:
            raise ValueError(
                f"b must have shape ({W.shape[0]},) to match W, got {tuple(b.shape)}"
            )
        check_positive("sigma", sigma)
        self.W = nn.Parameter(W.clone())
        self.b = nn.Parameter(b.clone())
        sigma = torch.as_tensor(sigma, dtype=W.dtype, device=W.device)
        self.log_sigma = nn.Parameter(sigma.log().reshape(()))

    @classmethod
    def random(
        cls,
        x_dim: int,
        z_dim: int,
        sigma: float = 1.0,
        seed: int = 0,
        dtype=torch.float64,
    ) -> LinearGaussian:
        """A model with standard-normal ``W`` and ``b`` drawn from a fixed seed."""
        check_positive_int("x_dim", x_dim)
        check_positive_int("z_dim", z_dim)
        g = torch.Generator().manual_seed(seed)
        W = torch.randn(x_dim, z_dim, generator=g, dtype=dtype)
        b = torch.randn(x_dim, generator=g, dtype=dtype)
        return cls(W, b, sigma)

    @property
    def x_dim(self) -> int:
        return self.W.shape[0]

    @property
    def z_dim(self) -> int:
        return self.W.shape[1]

    @property
    def sigma(self) -> torch.Tensor:
        return self.log_sigma.exp()

    def prior(self) -> D.Distribution:
        """p(z) = N(0, I)."""
        return _standard_normal(self.z_dim, self.W)

    def likelihood(self, z: torch.Tensor) -> D.Distribution:
        """p(x|z) = N(Wz + b, sigma^2 I), batched over the leading dimensions of ``z``."""
        self._check_z(z)
        mean = z @ self.W.T + self.b
        return D.Independent(D.Normal(mean, self.sigma.expand_as(mean)), 1)

    def log_joint(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """log p(x, z) = log p(x|z) + log p(z), broadcast over leading dimensions."""
        self._check_x(x)
        return self.likelihood(z).log_prob(x) + self.prior().log_prob(z)

    def marginal(self) -> D.MultivariateNormal:
        """The exact p(x) = N(b, W W^T + sigma^2 I)."""
        cov = self.W @ self.W.T + self.sigma**2 * torch.eye(
            self.x_dim, dtype=self.W.dtype
        )
        return D.MultivariateNormal(self.b, covariance_matrix=cov)

    def log_marginal(self, x: torch.Tensor) -> torch.Tensor:
        r"""The exact log p(x), one value per row of ``x``.

        Computed through the small matrix :math:`M = W^\top W + \sigma^2 I_d` instead of
        the :math:`D \times D` covariance :math:`C = WW^\top + \sigma^2 I`, which loses
        all precision as :math:`\sigma \to 0`: :math:`\log\det C = (D - d)\log\sigma^2
        + \log\det M` and, with :math:`r = x - b` and the ridge solution
        :math:`\hat z = M^{-1}W^\top r`, :math:`r^\top C^{-1} r = \|r - W\hat z\|^2 /
        \sigma^2 + \|\hat z\|^2`, a sum of squares with no cancellation.
        """
        self._check_x(x)
        s2 = self.sigma**2
        eye = torch.eye(self.z_dim, dtype=self.W.dtype, device=self.W.device)
        chol = torch.linalg.cholesky(self.W.T @ self.W + s2 * eye)
        r = x - self.b
        z_hat = torch.cholesky_solve((r @ self.W).unsqueeze(-1), chol).squeeze(-1)
        quad = (r - z_hat @ self.W.T).pow(2).sum(-1) / s2 + z_hat.pow(2).sum(-1)
        log_det = (self.x_dim - self.z_dim) * torch.log(s2) + 2 * torch.log(
            chol.diagonal()
        ).sum()
        return -0.5 * (self.x_dim * math.log(2 * math.pi) + log_det + quad)

    def posterior(self, x: torch.Tensor) -> D.MultivariateNormal:
        """The exact p(z|x) = N(M^{-1} W^T (x - b), sigma^2 M^{-1}), M = W^T W + sigma^2 I."""
        self._check_x(x)
        eye = torch.eye(self.z_dim, dtype=self.W.dtype, device=self.W.device)
        M = self.W.T @ self.W + self.sigma**2 * eye
        M_inv = torch.linalg.inv(M)
        mean = (x - self.b) @ self.W @ M_inv
        return D.MultivariateNormal(mean, covariance_matrix=self.sigma**2 * M_inv)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Draw ``n`` observations x ~ p(x) (ancestral sampling through z)."""
        check_positive_int("n", n)
        opts = dict(dtype=self.W.dtype, device=self.W.device, generator=generator)
        z = torch.randn(n, self.z_dim, **opts)
        with torch.no_grad():
            return (
                z @ self.W.T + self.b + self.sigma * torch.randn(n, self.x_dim, **opts)
            )

    def _check_x(self, x: torch.Tensor) -> None:
        check_tensor("x", x, min_dim=1)
        if x.shape[-1] != self.x_dim:
            raise ValueError(
                f"x must have last dimension {self.x_dim}, got {tuple(x.shape)}"
            )

    def _check_z(self, z: torch.Tensor) -> None:
        check_tensor("z", z, min_dim=1)
        if z.shape[-1] != self.z_dim:
            raise ValueError(
                f"z must have last dimension {self.z_dim}, got {tuple(z.shape)}"
            )


def ppca_mle(x: torch.Tensor, z_dim: int) -> LinearGaussian:
    r"""The closed-form maximum-likelihood linear-Gaussian model for data ``x``.

    With sample covariance eigenvalues :math:`\lambda_1 \ge \dots \ge \lambda_D` and
    eigenvectors :math:`U`, the MLE is :math:`b = \bar x`,
    :math:`\sigma^2 = \frac{1}{D-d}\sum_{j>d}\lambda_j` and
    :math:`W = U_d(\Lambda_d - \sigma^2 I)^{1/2}` (up to a rotation of the latent space).

    Arguments:
        x: data, shape ``(n, D)``.
        z_dim: latent dimension ``d``, with ``1 <= d < D``.

    Returns:
        The fitted :class:`LinearGaussian`.

    References:
        Tipping & Bishop (1999), Probabilistic principal component analysis, eqs. 7-8.

    Example:
        >>> truth = LinearGaussian.random(x_dim=5, z_dim=2, sigma=0.3, seed=1)
        >>> fitted = ppca_mle(truth.sample(20000, torch.Generator().manual_seed(0)), z_dim=2)
        >>> abs(fitted.sigma.item() - 0.3) < 0.01
        True
    """
    check_tensor("x", x, dim=2)
    n, x_dim = x.shape
    check_positive_int("z_dim", z_dim)
    if z_dim >= x_dim:
        raise ValueError(
            f"z_dim must be smaller than x's dimension {x_dim}, got {z_dim}"
        )
    b = x.mean(0)
    cov = (x - b).T @ (x - b) / n
    evals, evecs = torch.linalg.eigh(cov)
    evals, evecs = evals.flip(0), evecs.flip(1)
    sigma2 = evals[z_dim:].mean()
    if not sigma2 > 0:
        raise ValueError(
            f"x lies in a subspace of dimension {z_dim} or less: no variance is left"
            " for the noise sigma, and the likelihood has no maximum"
        )
    W = evecs[:, :z_dim] * (evals[:z_dim] - sigma2).clamp_min(0).sqrt()
    return LinearGaussian(W, b, sigma2.sqrt())


class VAE(nn.Module):
    r"""A VAE: Gaussian encoder q(z|x), N(0, I) prior, and a decoder network.

    Subclasses choose the likelihood p(x|z) by defining :meth:`likelihood` from the
    decoder's output. Chapters: iwae, vae.

    Arguments:
        x_dim: data dimension.
        z_dim: latent dimension.
        hidden: widths of the hidden layers of both encoder and decoder.

    References:
        Kingma & Welling (2013), arXiv:1312.6114.
    """

    def __init__(self, x_dim: int, z_dim: int, hidden: tuple[int, ...] = (100, 100)):
        super().__init__()
        check_positive_int("x_dim", x_dim)
        check_positive_int("z_dim", z_dim)
        self.x_dim, self.z_dim = x_dim, z_dim
        self.encoder = GaussianEncoder(x_dim, z_dim, hidden)
        self.decoder = MLP((z_dim, *hidden[::-1], x_dim))

    def encode(self, x: torch.Tensor) -> D.Distribution:
        """q_phi(z|x), a diagonal Gaussian with batch shape ``x.shape[:-1]``."""
        return self.encoder(x)

    def prior(self) -> D.Distribution:
        """p(z) = N(0, I)."""
        return _standard_normal(self.z_dim, next(self.parameters()))

    def likelihood(self, z: torch.Tensor) -> D.Distribution:
        """p_theta(x|z); defined by each subclass."""
        raise NotImplementedError

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """The mean of p_theta(x|z): what the decoder "reconstructs" from ``z``."""
        return self.likelihood(z).mean

    def log_joint(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """log p(x, z), broadcast over leading dimensions of ``z``."""
        check_tensor("x", x, min_dim=1)
        if x.shape[-1] != self.x_dim:
            raise ValueError(
                f"x must have last dimension {self.x_dim}, got {tuple(x.shape)}"
            )
        return self.likelihood(z).log_prob(x) + self.prior().log_prob(z)

    @torch.no_grad()
    def sample(self, n: int) -> torch.Tensor:
        """Decoded means of ``n`` prior draws."""
        check_positive_int("n", n)
        return self.decode(self.prior().sample((n,)))


class BernoulliVAE(VAE):
    r"""A VAE for binary data: independent Bernoulli pixels with logits from the decoder.

    Chapters: iwae (trained with the ELBO_k and IWAE_k objectives), vae.

    Arguments:
        x_dim, z_dim, hidden: as in :class:`VAE`.

    References:
        Kingma & Welling (2013), arXiv:1312.6114; Burda et al. (2015), arXiv:1509.00519.

    Example:
        >>> vae = BernoulliVAE(x_dim=64, z_dim=4, hidden=(32,))
        >>> x = torch.bernoulli(torch.full((3, 64), 0.5))
        >>> z = vae.encode(x).rsample((5,))
        >>> vae.log_joint(x, z).shape
        torch.Size([5, 3])
    """

    def likelihood(self, z: torch.Tensor) -> D.Distribution:
        """p_theta(x|z): independent Bernoulli pixels with logits from the decoder."""
        check_tensor("z", z, min_dim=1)
        return D.Independent(D.Bernoulli(logits=self.decoder(z)), 1)


class GaussianVAE(VAE):
    r"""A VAE with a Gaussian decoder of fixed noise: p(x|z) = N(sigmoid(f(z)), sigma^2 I).

    With sigma fixed, :math:`-\log p(x|z)` is the squared error
    :math:`\|x - \hat x\|^2 / (2\sigma^2)` plus the constant
    :math:`\tfrac{D}{2}\log(2\pi\sigma^2)`, so sigma sets the weight of reconstruction
    against the KL term. Chapter: vae.

    Arguments:
        x_dim, z_dim, hidden: as in :class:`VAE`.
        sigma: the decoder's noise standard deviation, positive.

    Example:
        >>> vae = GaussianVAE(x_dim=64, z_dim=2, hidden=(32,), sigma=0.1)
        >>> vae.sample(3).shape
        torch.Size([3, 64])
    """

    def __init__(
        self,
        x_dim: int,
        z_dim: int,
        hidden: tuple[int, ...] = (100, 100),
        sigma: float = 0.1,
    ):
        super().__init__(x_dim, z_dim, hidden)
        check_positive("sigma", sigma)
        self.sigma = float(sigma)

    def likelihood(self, z: torch.Tensor) -> D.Distribution:
        """p_theta(x|z) = N(sigmoid(decoder(z)), sigma^2 I)."""
        check_tensor("z", z, min_dim=1)
        return D.Independent(D.Normal(torch.sigmoid(self.decoder(z)), self.sigma), 1)


class GMVAE(nn.Module):
    r"""The Gaussian-mixture VAE of Dilokthanakul et al. (2016), for binary data.

    In the paper's notation, an observation :math:`y` has a continuous latent :math:`x`, a
    mixture-shaping latent :math:`w` and a one-hot cluster :math:`z`:

    .. math::

        w \sim \mathcal N(0, I),\quad z \sim \mathrm{Cat}(1/K),\quad
        x \mid w, z{=}k \sim \mathcal N(\mu_k(w), \operatorname{diag}\sigma_k^2(w)),\quad
        y \mid x \sim \mathrm{Bernoulli}(\mathrm{logits}(x)).

    The variational family is :math:`q(x|y)\,q(w|y)\,p_\beta(z|x, w)`: the cluster
    posterior is the exact conditional of the prior, computed by Bayes' rule.
    Chapter: gmvae.

    Arguments:
        y_dim: number of binary pixels.
        x_dim: dimension of the continuous latent x.
        w_dim: dimension of w.
        k: number of mixture components, at least 2.
        hidden: hidden-layer widths of every network.

    References:
        Dilokthanakul et al. (2016), arXiv:1611.02648.

    Example:
        >>> m = GMVAE(y_dim=64, x_dim=4, w_dim=2, k=3, hidden=(16,))
        >>> terms = m.elbo_terms(torch.bernoulli(torch.full((5, 64), 0.5)))
        >>> sorted(terms), terms["reconstruction"].shape
        (['conditional_prior', 'reconstruction', 'w_prior', 'z_prior'], torch.Size([5]))
    """

    def __init__(
        self,
        y_dim: int,
        x_dim: int,
        w_dim: int,
        k: int,
        hidden: tuple[int, ...] = (64,),
    ):
        super().__init__()
        for name, value in (("y_dim", y_dim), ("x_dim", x_dim), ("w_dim", w_dim)):
            check_positive_int(name, value)
        check_positive_int("k", k)
        if k < 2:
            raise ValueError(f"k must be at least 2 components, got {k}")
        self.y_dim, self.x_dim, self.w_dim, self.k = y_dim, x_dim, w_dim, k
        self.encoder_x = GaussianEncoder(y_dim, x_dim, hidden)
        self.encoder_w = GaussianEncoder(y_dim, w_dim, hidden)
        self.beta = MLP((w_dim, *hidden, 2 * k * x_dim))
        self.decoder = MLP((x_dim, *hidden[::-1], y_dim))

    def encode(self, y: torch.Tensor) -> tuple[D.Distribution, D.Distribution]:
        """q(x|y) and q(w|y), diagonal Gaussians with batch shape ``y.shape[:-1]``."""
        self._check_y(y)
        return self.encoder_x(y), self.encoder_w(y)

    def components(self, w: torch.Tensor) -> D.Distribution:
        """p_beta(x | w, z=k) for every k: batch shape ``w.shape[:-1] + (k,)``."""
        check_tensor("w", w, min_dim=1)
        out = self.beta(w).unflatten(-1, (self.k, 2 * self.x_dim))
        mean, log_std = out.chunk(2, dim=-1)
        return D.Independent(D.Normal(mean, log_std.exp()), 1)

    def cluster_posterior(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """p_beta(z=k | x, w) by Bayes' rule with the uniform p(z): shape ``(..., k)``."""
        check_tensor("x", x, min_dim=1)
        log_joint = self.components(w).log_prob(x.unsqueeze(-2)) - math.log(self.k)
        return torch.softmax(log_joint, dim=-1)

    def likelihood(self, x: torch.Tensor) -> D.Distribution:
        """p_theta(y | x): independent Bernoulli pixels."""
        check_tensor("x", x, min_dim=1)
        return D.Independent(D.Bernoulli(logits=self.decoder(x)), 1)

    def elbo_terms(self, y: torch.Tensor) -> dict[str, torch.Tensor]:
        """The ELBO's four terms for one reparameterised draw of (x, w) per observation.

        ``reconstruction`` = log p(y|x); ``conditional_prior`` =
        sum_k p(z=k|x,w) log p(x|w,z=k) - log q(x|y); ``w_prior`` = -KL(q(w|y) || p(w))
        in closed form; ``z_prior`` = -KL(p(z|x,w) || p(z)), exact over the k values.
        Their sum is an unbiased estimate of the ELBO.
        """
        q_x, q_w = self.encode(y)
        x, w = q_x.rsample(), q_w.rsample()
        comps = self.components(w)
        post = self.cluster_posterior(x, w)
        log_post = torch.log(post.clamp_min(1e-30))
        conditional = (post * comps.log_prob(x.unsqueeze(-2))).sum(-1) - q_x.log_prob(x)
        w_prior = -D.kl_divergence(q_w, _standard_normal(self.w_dim, w))
        z_prior = -(post * (log_post + math.log(self.k))).sum(-1)
        return {
            "reconstruction": self.likelihood(x).log_prob(y),
            "conditional_prior": conditional,
            "w_prior": w_prior,
            "z_prior": z_prior,
        }

    @torch.no_grad()
    def cluster(self, y: torch.Tensor) -> torch.Tensor:
        """The most probable component of each observation, at the posterior means."""
        q_x, q_w = self.encode(y)
        return self.cluster_posterior(q_x.mean, q_w.mean).argmax(-1)

    @torch.no_grad()
    def sample(self, n: int, component: int) -> torch.Tensor:
        """Pixel probabilities of ``n`` draws from one mixture component."""
        check_positive_int("n", n)
        if not 0 <= component < self.k:
            raise ValueError(f"component must be in [0, {self.k}), got {component}")
        w = _standard_normal(self.w_dim, next(self.parameters())).sample((n,))
        x = self.components(w).sample()[:, component]
        return self.likelihood(x).mean

    def _check_y(self, y: torch.Tensor) -> None:
        check_tensor("y", y, min_dim=1)
        if y.shape[-1] != self.y_dim:
            raise ValueError(
                f"y must have last dimension {self.y_dim}, got {tuple(y.shape)}"
            )
