"""The bad-input sweep (tests/bad_input_cases.py): every bad call derived from a valid
public call is refused with a ValueError or TypeError naming the argument, or, for input
that may be accepted (a NumPy array or integer, the other float precision, -inf
log-weights, an empty map), returns a result without NaN. No silent wrong result, no
error from deep inside torch that names nothing the caller passed."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from bad_input_cases import CASES, outcome, variants
from conftest import raises_naming
from hypothesis import given, settings
from hypothesis import strategies as st

from vbtutor import _checks, diffusion
from vbtutor import stick_breaking as sb
from vbtutor.bounds import log_mean_exp

BAD_CALLS = [
    pytest.param(case, name, label, id=f"{case.name}-{name}-{label}")
    for case in CASES
    for name, label, _ in variants(case)
]


@pytest.mark.parametrize(("case", "name", "label"), BAD_CALLS)
def test_bad_input_is_refused_by_name_or_accepted_correctly(case, name, label):
    kwargs = next(kw for n, lab, kw in variants(case) if (n, lab) == (name, label))
    assert outcome(case, name, label, kwargs) in ("clear", "accepted")


def test_the_sweep_covers_every_class_of_bad_input():
    labels = {label for case in CASES for _, label, _ in variants(case)}
    assert labels >= {"nan", "+inf", "-inf", "empty", "shape", "numpy", "other_dtype"}
    assert labels >= {"zero", "negative", "fraction", "numpy_int"}
    assert len(CASES) >= 60


def test_check_tensor_refuses_inf_and_empty_and_lets_neg_inf_through_on_request():
    with raises_naming("w"):
        _checks.check_tensor("w", torch.tensor([1.0, float("inf")]))
    with raises_naming("w"):
        _checks.check_tensor("w", torch.tensor([1.0, -float("inf")]))
    with raises_naming("w"):
        _checks.check_tensor("w", torch.zeros(0, 2))
    with raises_naming("w"):  # +inf stays refused
        _checks.check_tensor("w", torch.tensor([float("inf")]), allow_neg_inf=True)
    zero_weight = torch.tensor([0.0, -float("inf")])  # a weight of exactly zero
    assert float(log_mean_exp(zero_weight)) == pytest.approx(np.log(0.5))


def test_numpy_integers_are_integers():
    s = diffusion.linear_schedule(10)
    x0 = torch.randn(3, 2)
    for t in (3, np.int64(3), np.int32(3)):
        mean, _ = diffusion.marginal(s, x0, t)
        assert torch.equal(mean, diffusion.marginal(s, x0, 3)[0])
    assert _checks.check_seeds([np.int64(1), 2]) == [1, 2]


def test_kumaraswamy_is_torchs_class_with_the_chapters_sampler():
    a = torch.tensor([2.0, 0.5], dtype=torch.float64)
    b = torch.tensor([5.0, 0.5], dtype=torch.float64)
    q, reference = sb.Kumaraswamy(a, b), torch.distributions.Kumaraswamy(a, b)
    assert isinstance(q, torch.distributions.Kumaraswamy)
    for stat in ("mean", "variance"):
        assert torch.equal(getattr(q, stat), getattr(reference, stat))
    torch.manual_seed(0)
    v = q.sample((1000,))
    torch.manual_seed(0)
    v_torch = reference.sample((1000,))
    # the same uniform draws through two formulas: they agree to rounding (torch's
    # 1 - u^(1/b) loses up to eps / (1 - u^(1/b)) of relative accuracy, and a power
    # 1/a <= 2 at most doubles it), so 1e-10 is rounding with room; a wrong formula
    # differs by far more. Draws are clipped to 1 - eps, torch's are not.
    eps = torch.finfo(torch.float64).eps
    assert torch.allclose(v, v_torch.clamp(max=1 - eps), rtol=0, atol=1e-10)
    assert bool(((v > 0) & (v < 1)).all())  # clipped: log v, log(1 - v) finite
    assert q.expand((3, 2)).a.shape == (3, 2)


def _float_tensor_arguments(case) -> list[str]:
    return [
        name
        for name, value in case.make().items()
        if isinstance(value, torch.Tensor)
        and value.is_floating_point()
        and value.numel()
    ]


CASES_WITH_TENSORS = [case for case in CASES if _float_tensor_arguments(case)]


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_a_bad_value_at_any_position_is_refused_by_name(data):
    """The sweep puts NaN or inf in the last entry; here hypothesis picks the function,
    the argument, the entry and the value."""
    case = data.draw(st.sampled_from(CASES_WITH_TENSORS), label="case")
    kwargs = case.make()
    name = data.draw(st.sampled_from(_float_tensor_arguments(case)), label="argument")
    label, bad = data.draw(
        st.sampled_from([("nan", np.nan), ("+inf", np.inf), ("-inf", -np.inf)]),
        label="value",
    )
    value = kwargs[name].detach().clone()
    index = data.draw(st.integers(0, value.numel() - 1), label="entry")
    value.view(-1)[index] = bad
    kwargs[name] = value
    assert outcome(case, name, label, kwargs) in ("clear", "accepted")
