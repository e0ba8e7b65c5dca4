"""Tensor errors in units of the values' magnitude, so comparisons hold on any CPU (Intel or AMD, any batch size)."""
# fp32 rounding is relative: a different reduction order (another CPU's kernels, another batch size) moves a
# result by a few ulp of its magnitude, so an absolute tolerance that is tight at |x| ~ 1 fails at |x| ~ 1e2.
import torch


def rel_err(actual, expected) -> float:
    """max |actual - expected| over the larger max |value| of the two (0 when both are exactly zero)."""
    a, e = torch.as_tensor(actual).double(), torch.as_tensor(expected).double()
    scale = max(a.abs().max().item(), e.abs().max().item()) if a.numel() else 0.0
    diff = (a - e).abs().max().item() if a.numel() else 0.0
    return diff / scale if scale > 0 else diff


def assert_rel_close(actual, expected, tol, what=""):
    """`actual` equals `expected` up to `tol` times their magnitude (see rel_err)."""
    assert torch.as_tensor(actual).shape == torch.as_tensor(expected).shape, what
    err = rel_err(actual, expected)
    assert err <= tol, f"{what}: max |diff| is {err:.3g} of the magnitude > {tol:g}"


def assert_rel_differs(a, b, tol, what=""):
    """`a` and `b` differ by more than `tol` times their magnitude: an effect, not rounding noise."""
    err = rel_err(a, b)
    assert err > tol, f"{what}: max |diff| is only {err:.3g} of the magnitude (<= {tol:g}): no effect"
