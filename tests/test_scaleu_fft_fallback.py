"""ScaleU's Fourier filter falls back to the CPU where the device has no FFT, with identical results."""
import logging
import types

import pytest
import torch

from instdiff_model import scaleu
from tolerance import assert_rel_differs

NO_FFT = "The operator 'aten::_fft_r2c' is not currently implemented for the MPS device."


@pytest.fixture
def fftn_calls(monkeypatch):
    """Patches torch.fft.fftn to record its calls and raise what `fail(n)` returns for call n (None: real FFT)."""
    real, calls = torch.fft.fftn, types.SimpleNamespace(devices=[], fail=lambda n: None)

    def fftn(x, *args, **kwargs):
        calls.devices.append(x.device)
        error = calls.fail(len(calls.devices))
        if error is not None:
            raise error
        return real(x, *args, **kwargs)

    monkeypatch.setattr(torch.fft, "fftn", fftn)
    return calls


def skip_and_s():
    g = torch.Generator().manual_seed(0)
    return torch.randn(2, 8, 12, 10, generator=g), torch.tensor([1.7])


def test_fft_failure_falls_back_to_cpu_with_identical_results(fftn_calls, caplog):
    skip, s = skip_and_s()
    fft = scaleu.FFTFallback()  # a ScaleU patch's
    expected = scaleu.fourier_filter(skip, s)
    assert_rel_differs(expected, skip, 1e-3, "the filter")  # the filter really changes the skip features
    fftn_calls.devices.clear()
    fftn_calls.fail = lambda n: NotImplementedError(NO_FFT) if n == 1 else None  # the device's FFT fails
    with caplog.at_level(logging.WARNING):
        assert torch.equal(scaleu.fourier_filter(skip, s, fft), expected)
    assert "no FFT on cpu" in caplog.text and "on the CPU" in caplog.text
    assert fft.cpu_devices == {skip.device}
    fftn_calls.devices.clear()
    caplog.clear()
    fftn_calls.fail = lambda n: None
    with caplog.at_level(logging.WARNING):
        assert torch.equal(scaleu.fourier_filter(skip, s, fft), expected)
    assert len(fftn_calls.devices) == 1 and not caplog.text  # remembered: one FFT on the CPU path, no new warning


def test_out_of_memory_and_a_failing_cpu_fft_are_not_swallowed(fftn_calls):
    skip, s = skip_and_s()
    fft = scaleu.FFTFallback()
    fftn_calls.fail = lambda n: torch.cuda.OutOfMemoryError("CUDA out of memory")
    with pytest.raises(torch.cuda.OutOfMemoryError):
        scaleu.fourier_filter(skip, s, fft)
    assert not fft.cpu_devices  # an OOM says nothing about FFT support
    fftn_calls.fail = lambda n: RuntimeError("CUDA error: an illegal memory access was encountered")
    with pytest.raises(RuntimeError, match="illegal memory access"):
        scaleu.fourier_filter(skip, s, fft)
    assert not fft.cpu_devices and len(fftn_calls.devices) == 2  # a real device error: raised, no CPU retry
    fftn_calls.fail = lambda n: RuntimeError(NO_FFT)
    with pytest.raises(RuntimeError, match="not currently implemented"):
        scaleu.fourier_filter(skip, s, fft)


def test_the_fallback_is_per_patch(tiny, fftn_calls):
    """A ScaleU patch that found the FFT unsupported filters on the CPU; another patch (another Apply) still tries
    the device's FFT: nothing global is remembered."""
    patch = tiny.mod("nodes.patch")
    instdiff = tiny.instdiff("fft-per-patch")
    first, second = patch.ScaleUPatch(instdiff), patch.ScaleUPatch(instdiff)
    channels = instdiff.scaleu.scaleu_b_0.numel()
    h, skip = torch.randn(1, channels, 8, 8), torch.randn(1, channels, 8, 8)
    fftn_calls.fail = lambda n: NotImplementedError(NO_FFT) if n == 1 else None
    out = first(h, skip, {"block": ("output", 0)})
    assert first.fft.cpu_devices == {skip.device} and not second.fft.cpu_devices
    fftn_calls.devices.clear()
    fftn_calls.fail = lambda n: None
    assert all(torch.equal(a, b) for a, b in zip(second(h, skip, {"block": ("output", 0)}), out))
    assert len(fftn_calls.devices) == 1 and not second.fft.cpu_devices
