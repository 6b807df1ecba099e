"""Seeding, device choice, quick/full/smoke settings and a seeded fit loop (every chapter)."""

from __future__ import annotations

import contextlib
import numbers
import os
import random
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

import numpy as np
import torch
from torch import distributions as D
from tqdm.auto import trange

from ._checks import check_seeds
from .bounds import elbo
from .nn import stack_networks, unstack_networks
from .plotting import use_book_style

__all__ = [
    "setup",
    "cpu_threads",
    "seed_everything",
    "get_device",
    "full_mode",
    "choose",
    "SMOKE_CAP",
    "smoke_mode",
    "smoke_cap",
    "show_progress",
    "fit",
    "unvalidated",
    "gradient_samples",
    "fit_vae",
    "fit_seeds",
    "stack_seeded",
    "fit_vae_seeds",
]

T = TypeVar("T")


def seed_everything(seed: int = 0) -> torch.Generator:
    """Seed Python, NumPy and PyTorch (CPU and CUDA) so a chapter gives the same numbers twice.

    Arguments:
        seed: a non-negative integer.

    Returns:
        A ``torch.Generator`` seeded with ``seed``, for code that wants its own stream.

    Example:
        >>> _ = seed_everything(3); a = torch.rand(2)
        >>> _ = seed_everything(3); b = torch.rand(2)
        >>> bool(torch.equal(a, b))
        True
    """
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device
    return torch.Generator().manual_seed(seed)


def cpu_threads() -> int:
    """The number of CPU threads torch may use: ``VBTUTOR_THREADS``, default 1.

    One thread is the book's policy on the CPU. Its networks are small, so a second
    thread saves little on an idle machine and costs a great deal when another process
    competes for the cores; and a fixed thread count keeps results independent of how
    many cores the reader's machine has. ``VBTUTOR_THREADS=4`` (say) overrides it.

    Example:
        >>> cpu_threads() >= 1
        True
    """
    value = os.environ.get("VBTUTOR_THREADS", "1").strip()
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"VBTUTOR_THREADS must be a positive integer, got {value!r}")
    return int(value)


def setup(seed: int = 0) -> torch.device:
    """Start a chapter: seed, CPU threads, device and figure style, in one call.

    Every chapter's setup cell calls this, so the run policy lives in one place:
    :func:`seed_everything` with ``seed``; :func:`cpu_threads` threads for torch;
    :func:`get_device` (CUDA when available, ``VBTUTOR_DEVICE`` overrides);
    :func:`vbtutor.plotting.use_book_style` (readable fonts, sharp figures); and NumPy
    prints every entry of an array with the same number of decimals (``0.080``, not
    ``0.08 `` beside ``0.167``; ``1.00`` beside ``-0.60``, not ``1.``).

    Arguments:
        seed: a non-negative integer.

    Returns:
        The device the chapter computes on.

    Example:
        >>> setup(0).type in ("cpu", "cuda")
        True
        >>> torch.get_num_threads() == cpu_threads()
        True
    """
    seed_everything(seed)
    torch.set_num_threads(cpu_threads())
    use_book_style()
    np.set_printoptions(floatmode="maxprec_equal")
    return get_device()


def get_device(prefer: str | None = None) -> torch.device:
    """Return CUDA when it is available, else the CPU.

    Arguments:
        prefer: ``"cpu"`` or ``"cuda"`` to force a choice; ``None`` picks automatically.
            The environment variable ``VBTUTOR_DEVICE`` overrides the automatic choice.

    Returns:
        A ``torch.device``.

    Example:
        >>> get_device("cpu")
        device(type='cpu')
    """
    prefer = prefer or os.environ.get("VBTUTOR_DEVICE")
    if prefer is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if prefer not in ("cpu", "cuda"):
        raise ValueError(f"prefer must be 'cpu', 'cuda' or None, got {prefer!r}")
    if prefer == "cuda" and not torch.cuda.is_available():
        raise ValueError("prefer='cuda' but no CUDA device is available")
    return torch.device(prefer)


def _flag(name: str) -> bool:
    return os.environ.get(name, "0").strip() not in ("", "0", "false", "False")


def full_mode() -> bool:
    """True when ``VBTUTOR_FULL=1`` asks for the larger (GPU / Colab) configuration.

    Example:
        >>> isinstance(full_mode(), bool)
        True
    """
    return _flag("VBTUTOR_FULL")


#: Under ``VBTUTOR_SMOKE=1``, the most steps, iterations or draws that a size may take,
#: unless ``VBTUTOR_SMOKE_STEPS`` sets another number.
SMOKE_CAP = 10


def smoke_mode() -> bool:
    """True when ``VBTUTOR_SMOKE=1`` asks for a smoke run: every size cut to a few.

    ``make smoke`` (tools/smoke_full.py) runs every chapter with ``VBTUTOR_FULL=1`` and
    ``VBTUTOR_SMOKE=1``: the full configuration's code paths (its wider networks, more
    seeds) for a few steps each, so that the configuration meant for a GPU cannot break
    unnoticed. The results mean nothing; the chapters' claims are reported, not enforced.

    Example:
        >>> isinstance(smoke_mode(), bool)
        True
    """
    return _flag("VBTUTOR_SMOKE")


def smoke_cap(n: int) -> int:
    """``n``, cut to at most :data:`SMOKE_CAP` (or ``VBTUTOR_SMOKE_STEPS``) in a smoke run.

    Arguments:
        n: a size that sets an amount of work: steps, iterations, draws, samples.

    Returns:
        ``min(n, cap)`` under ``VBTUTOR_SMOKE=1``, else ``n``.

    Example:
        >>> smoke_cap(5000) == (min(5000, SMOKE_CAP) if smoke_mode() else 5000)
        True
    """
    if not isinstance(n, numbers.Integral) or isinstance(n, bool):
        raise ValueError(f"n must be an int, got {n!r}")
    if not smoke_mode():
        return n
    value = os.environ.get("VBTUTOR_SMOKE_STEPS", str(SMOKE_CAP)).strip()
    if not value.isdigit() or int(value) < 1:
        raise ValueError(
            f"VBTUTOR_SMOKE_STEPS must be a positive integer, got {value!r}"
        )
    return min(n, int(value))


def choose(quick: T, full: T) -> T:
    """Pick the quick setting by default and the full one under ``VBTUTOR_FULL=1``.

    The chapters choose two kinds of setting: sizes, given as ints (steps, iterations,
    Monte Carlo samples), and structure, given as tuples or lists (hidden widths, seeds).
    Under ``VBTUTOR_SMOKE=1`` an int is cut by :func:`smoke_cap`, and structure is kept.

    Example:
        >>> choose(quick=200, full=5000) in (200, 5000, SMOKE_CAP)
        True
    """
    value = full if full_mode() else quick
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return smoke_cap(value)  # type: ignore[return-value]
    return value


def show_progress() -> bool:
    """True unless ``VBTUTOR_PROGRESS=off``.

    A person running a notebook sees a progress bar during training; ``make notebooks``
    and ``make test`` set ``VBTUTOR_PROGRESS=off``, so stored outputs stay deterministic.

    Example:
        >>> isinstance(show_progress(), bool)
        True
    """
    return os.environ.get("VBTUTOR_PROGRESS", "on").strip().lower() != "off"


def fit(
    loss_fn: Callable[[], torch.Tensor],
    parameters: Iterable[torch.nn.Parameter],
    steps: int,
    lr: float = 1e-3,
    record_every: int = 1,
    progress: bool | None = None,
) -> list[float]:
    """Minimise ``loss_fn()`` with Adam for ``steps`` steps and return the recorded losses.

    ``loss_fn`` takes no argument: it draws its own mini-batch and Monte Carlo samples,
    so seeding once before calling ``fit`` makes the whole run reproducible.

    Arguments:
        loss_fn: returns a scalar tensor to minimise.
        parameters: the parameters to optimise.
        steps: number of optimiser steps, at least 1 (cut by :func:`smoke_cap` under
            ``VBTUTOR_SMOKE=1``).
        lr: Adam learning rate, positive.
        record_every: keep the loss of every ``record_every``-th step.
        progress: show a progress bar that disappears when training ends;
            ``None`` follows :func:`show_progress`.

    Returns:
        The list of recorded loss values (Python floats).

    Example:
        >>> w = torch.nn.Parameter(torch.tensor(3.0))
        >>> losses = fit(lambda: (w - 1.0) ** 2, [w], 500, lr=0.05, progress=False)
        >>> abs(w.item() - 1.0) < 1e-2
        True
    """
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    if not lr > 0:
        raise ValueError(f"lr must be positive, got {lr!r}")
    if not isinstance(record_every, int) or record_every < 1:
        raise ValueError(f"record_every must be a positive int, got {record_every!r}")
    params = list(parameters)
    if not params:
        raise ValueError("parameters is empty: nothing to optimise")
    steps = smoke_cap(steps)
    optimiser = torch.optim.Adam(params, lr=lr)
    history = []
    show = show_progress() if progress is None else progress
    bar = trange(steps, desc="training", leave=False, disable=not show)
    for step in bar:
        with unvalidated(step > 0):
            optimiser.zero_grad()
            loss = loss_fn()
            if loss.dim() != 0:
                raise ValueError(
                    f"loss_fn must return a scalar, got shape {tuple(loss.shape)}"
                )
            if not torch.isfinite(loss):
                raise ValueError(f"loss_fn returned {loss.item()} at step {step}")
            loss.backward()
            optimiser.step()
        if step % record_every == 0:
            history.append(loss.item())
        if show and step % 50 == 0:
            bar.set_postfix(loss=f"{loss.item():.3g}", refresh=False)
    return history


@contextlib.contextmanager
def unvalidated(skip: bool = True) -> Iterator[None]:
    """Skip ``torch.distributions``' argument and sample checks inside the block.

    The checks cost about a sixth of a small model's training step. A training loop
    validates its first step, which builds every distribution the later steps build
    again, and skips the checks from then on (``unvalidated(step > 0)``).

    Example:
        >>> with unvalidated():
        ...     D.Normal(0.0, -1.0).scale  # no error: the check is off
        tensor(-1.)
    """
    previous = D.Distribution._validate_args
    if skip:
        D.Distribution.set_default_validate_args(False)
    try:
        yield
    finally:
        D.Distribution.set_default_validate_args(previous)


def gradient_samples(
    loss_fn: Callable[[], torch.Tensor],
    parameters: Iterable[torch.nn.Parameter],
    n: int,
) -> torch.Tensor:
    """Draw ``n`` independent stochastic gradients of ``loss_fn()``, flattened.

    Each call of ``loss_fn`` draws fresh Monte Carlo samples, so the rows are independent
    draws of the gradient estimator; their spread is the estimator's noise. Chapter: vae.

    Arguments:
        loss_fn: returns a scalar tensor.
        parameters: the parameters to differentiate with respect to.
        n: number of draws, at least 2.

    Returns:
        Tensor of shape ``(n, P)`` with ``P`` the total number of parameter entries.

    Example:
        >>> w = torch.nn.Parameter(torch.tensor([1.0, 2.0]))
        >>> g = gradient_samples(lambda: (w * torch.randn(2)).sum(), [w], n=4)
        >>> g.shape
        torch.Size([4, 2])
    """
    if not isinstance(n, int) or isinstance(n, bool) or n < 2:
        raise ValueError(f"n must be an int of at least 2, got {n!r}")
    params = list(parameters)
    if not params:
        raise ValueError("parameters is empty: nothing to differentiate")
    rows = []
    for _ in range(n):
        loss = loss_fn()
        if loss.dim() != 0:
            raise ValueError(
                f"loss_fn must return a scalar, got shape {tuple(loss.shape)}"
            )
        grads = torch.autograd.grad(loss, params, allow_unused=True)
        rows.append(
            torch.cat(
                [
                    (g if g is not None else torch.zeros_like(p)).flatten()
                    for g, p in zip(grads, params, strict=True)
                ]
            )
        )
    return torch.stack(rows)


def _check_batches(x: torch.Tensor, batch_size: int) -> None:
    if not isinstance(x, torch.Tensor) or x.dim() != 2:
        raise ValueError(f"x must be a 2-D tensor of data rows, got {type(x).__name__}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")


def fit_vae(
    vae,
    x: torch.Tensor,
    steps: int,
    objective: Callable | None = None,
    k: int = 1,
    batch_size: int = 100,
    lr: float = 3e-3,
    record_every: int = 10,
) -> dict[str, list[float]]:
    """Train a VAE on mini-batches of ``x`` with :func:`fit`, maximising an ELBO-type bound.

    Every ``record_every`` steps the history records the objective on the current batch
    and the ELBO's two terms for one fresh draw z ~ q(z|x): the reconstruction term
    log p(x|z) and the closed-form KL(q(z|x) || p(z)), each averaged over the batch.
    Chapters: vae (and any chapter that trains a VAE on digits).

    Arguments:
        vae: a :class:`vbtutor.models.VAE`.
        x: training data of shape ``(n, x_dim)``; batches are drawn with replacement.
        steps: optimiser steps.
        objective: a bound from :mod:`vbtutor.bounds` with the signature of
            :func:`~vbtutor.bounds.elbo` (default: the ELBO).
        k: samples per data point passed to ``objective``.
        batch_size: mini-batch size, at least 1.
        lr: Adam learning rate.
        record_every: record the history every this many steps.

    Returns:
        Dict with lists ``objective``, ``reconstruction`` and ``kl``.
    """
    _check_batches(x, batch_size)
    objective = objective or elbo
    history: dict[str, list[float]] = {"objective": [], "reconstruction": [], "kl": []}
    step = 0

    def loss() -> torch.Tensor:
        nonlocal step
        batch = x[torch.randint(0, len(x), (batch_size,), device=x.device)]
        q = vae.encode(batch)
        value = objective(vae, q, batch, k).value.mean()
        if step % record_every == 0:
            with torch.no_grad():
                recon = vae.likelihood(q.sample()).log_prob(batch).mean()
                kl = D.kl_divergence(q, vae.prior()).mean()
            history["objective"].append(value.item())
            history["reconstruction"].append(recon.item())
            history["kl"].append(kl.item())
        step += 1
        return -value

    fit(loss, vae.parameters(), steps=steps, lr=lr, record_every=record_every)
    return history


def fit_seeds(
    make: Callable[[], torch.nn.Module],
    seeds: Iterable[int],
    loss: Callable[[torch.nn.Module], torch.Tensor],
    steps: int,
    lr: float = 1e-3,
    progress: bool | None = None,
) -> tuple[list, np.ndarray]:
    """Train one model per seed, all side by side, each on its own loss.

    For each seed, :func:`seed_everything` then ``make()`` builds that seed's model, so its
    initial weights are those a single run from the seed would start with. The copies are
    stacked (:func:`vbtutor.nn.stack_networks`) and trained with :func:`fit` on the sum
    of their losses. Adam's update of a weight depends only on that weight's gradient, so
    each copy follows an independent training run; the copies' batches and draws come
    from one random stream (continuing after the last ``make()``), so a copy's run depends
    on the other seeds trained with it, and is reproduced by the same call. For small
    networks, ``S`` copies cost little more than one.

    Arguments:
        make: builds one model; every parameter must sit in an ``nn.Linear`` layer.
        seeds: at least one non-negative integer.
        loss: ``loss(stacked)`` returns the copies' losses for one step, shape ``(S,)``:
            it draws its own batches with a leading seed axis, ``(S, B, ...)``.
        steps, lr, progress: as in :func:`fit`.

    Returns:
        ``(models, losses)``: the trained models in the order of ``seeds``, and every
        step's loss per copy, an array of shape ``(steps, S)``.

    Example:
        >>> target = torch.tensor([[1.0], [2.0]])  # copy s fits the constant target[s]
        >>> def loss(stacked):
        ...     return (stacked(torch.ones(2, 1, 1)) - target[:, None]).pow(2).mean((1, 2))
        >>> fits, losses = fit_seeds(lambda: torch.nn.Linear(1, 1), [0, 1], loss, 500, 0.05)
        >>> [round(m(torch.ones(1)).item(), 2) for m in fits], losses.shape
        ([1.0, 2.0], (500, 2))
    """
    seeds = check_seeds(seeds)
    models = []
    for seed in seeds:
        seed_everything(seed)
        models.append(make())
    stacked = stack_networks(models)
    history = []

    def total() -> torch.Tensor:
        each = loss(stacked)
        if each.shape != (len(models),):
            raise ValueError(
                f"loss must return one loss per seed, shape ({len(models)},),"
                f" got {tuple(each.shape)}"
            )
        history.append(each.detach())
        return each.sum()

    fit(total, stacked.parameters(), steps=steps, lr=lr, progress=progress)
    return unstack_networks(stacked, models), torch.stack(history).cpu().numpy()


def stack_seeded(
    make: Callable[[], tuple[torch.nn.Module, ...]],
    seeds: Iterable[int],
    names: tuple[str, ...],
) -> tuple[torch.nn.ModuleDict, list[torch.nn.ModuleDict]]:
    """Build a set of networks per seed and stack each network over the seeds.

    For each seed, :func:`seed_everything` then ``make()`` returns that seed's networks
    (an encoder and a critic, say), kept in a ``ModuleDict`` under ``names``. Chapters:
    avb, vae (through the training loops that use it).

    Returns:
        ``(stacked, sets)``: the :func:`vbtutor.nn.stack_networks` of the sets, whose
        entries take inputs with a leading seed axis, and the per-seed sets, in the
        order of ``seeds`` (for :func:`vbtutor.nn.unstack_networks`).

    Example:
        >>> make = lambda: (torch.nn.Linear(2, 3), torch.nn.Linear(3, 1))
        >>> stacked, sets = stack_seeded(make, [0, 1], ("a", "b"))
        >>> stacked["a"](torch.zeros(2, 5, 2)).shape, len(sets)
        (torch.Size([2, 5, 3]), 2)
    """
    sets = []
    for seed in check_seeds(seeds):
        seed_everything(seed)
        networks = make()
        if len(networks) != len(names):
            raise ValueError(f"make must return {len(names)} networks, one per name")
        sets.append(torch.nn.ModuleDict(dict(zip(names, networks, strict=True))))
    return stack_networks(sets), sets


def fit_vae_seeds(
    make: Callable[[], torch.nn.Module],
    seeds: Iterable[int],
    x: torch.Tensor,
    steps: int,
    objective: Callable | None = None,
    k: int = 1,
    batch_size: int = 100,
    lr: float = 3e-3,
) -> list:
    """Train one VAE per seed, all side by side, and return them in the order of ``seeds``.

    :func:`fit_seeds` with the negative ``objective``: at every step each copy gets its
    own mini-batch of ``batch_size`` rows of ``x`` and its own Monte Carlo draws. The
    batches and draws come from one random stream, so the runs are not bit-identical to
    separate calls of :func:`fit_vae`. For small networks this costs little more than one
    run (with many Monte Carlo draws per point, ``k``, the saving disappears).

    Arguments:
        make: builds one model (on the device of ``x``); every parameter must sit in an
            ``nn.Linear`` layer.
        seeds: at least one non-negative integer.
        x: training data of shape ``(n, x_dim)``; batches are drawn with replacement.
        steps, objective, k, batch_size, lr: as in :func:`fit_vae`.

    Returns:
        The trained models, one per seed.

    Example:
        >>> from vbtutor.models import BernoulliVAE
        >>> x = torch.bernoulli(torch.full((50, 6), 0.5))
        >>> vaes = fit_vae_seeds(lambda: BernoulliVAE(6, 2, (8,)), [0, 1], x, 5)
        >>> len(vaes), type(vaes[0]).__name__
        (2, 'BernoulliVAE')
    """
    seeds = check_seeds(seeds)
    _check_batches(x, batch_size)
    objective = objective or elbo
    shape = (len(seeds), batch_size)

    def loss(stacked: torch.nn.Module) -> torch.Tensor:
        batch = x[torch.randint(0, len(x), shape, device=x.device)]
        return -objective(stacked, stacked.encode(batch), batch, k).value.mean(-1)

    return fit_seeds(make, seeds, loss, steps, lr)[0]
