"""ScaleU: per-channel backbone scaling and a Fourier filter on the skip features of every output block."""
import logging
import re

import torch
from torch import nn

from .blocks import SCALEU_CHANNELS
from .errors import InstDiffError


_UNSUPPORTED = re.compile(r"not (currently )?implemented|not supported|unsupported|(does not|doesn't|only) supports?",
                          re.IGNORECASE)


def fft_unsupported(error: Exception) -> bool:
    """Whether `error` says the device (or its dtype) has no FFT, as MPS and DirectML builds say; any other error
    (a CUDA fault, out of memory) is a real failure."""
    if isinstance(error, torch.cuda.OutOfMemoryError):
        return False
    return isinstance(error, NotImplementedError) or (isinstance(error, RuntimeError)
                                                       and bool(_UNSUPPORTED.search(str(error))))


class FFTFallback:
    """The devices on which one ScaleU patch found the FFT unsupported: their skip features are filtered on the CPU
    (as core FreeU does) from then on, for that patch."""

    def __init__(self):
        self.cpu_devices = set()

    def filter(self, hs: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        if hs.device not in self.cpu_devices:
            try:
                return _filter(hs, s)
            except (RuntimeError, NotImplementedError) as error:
                if not fft_unsupported(error):
                    raise
                logging.warning("InstanceDiffusion ScaleU: no FFT on %s (%s); filtering skip features on the CPU",
                                hs.device, str(error).splitlines()[0] if str(error) else type(error).__name__)
                self.cpu_devices.add(hs.device)
        return _filter(hs.cpu(), s.cpu()).to(hs.device)


def _filter(hs: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """fourier_filter on hs's own device."""
    height, width = hs.shape[-2:]
    freq = torch.fft.fftshift(torch.fft.fftn(hs.float(), dim=(-2, -1)), dim=(-2, -1))
    mask = torch.ones((height, width), dtype=torch.float32, device=hs.device)
    rows = slice(height // 2 - 1, height // 2 + 1)
    cols = slice(width // 2 - 1, width // 2 + 1)
    mask[rows, cols] = s.float().to(hs.device).reshape(())
    freq = torch.fft.ifftshift(freq * mask, dim=(-2, -1))
    return torch.fft.ifftn(freq, dim=(-2, -1)).real.to(hs.dtype)


def fourier_filter(hs: torch.Tensor, s: torch.Tensor, fft: FFTFallback | None = None) -> torch.Tensor:
    """Scale the centred 2x2 frequency block of `hs` (B,C,H,W) by `s`; float32 FFT, real part, input dtype back.

    The block is the official slice rows [H//2-1 : H//2+1], cols [W//2-1 : W//2+1] of the fftshifted spectrum,
    with Python slice semantics: for H == 1 the slice -1:1 is row 0 alone (likewise for W == 1).
    Where the device has no FFT the filter runs on the CPU, remembered in `fft` (a ScaleU patch's) when given.
    """
    return (fft or FFTFallback()).filter(hs, s)


def apply_scaleu(h: torch.Tensor, hs: torch.Tensor, scaleu_b: torch.Tensor, scaleu_s: torch.Tensor,
                 fft: FFTFallback | None = None):
    """(h * (tanh(b)+1) per channel, skip filtered with tanh(s)+1); the caller concatenates [h, hs] on dim 1."""
    if h.ndim != 4 or hs.ndim != 4 or h.shape[1] != scaleu_b.numel() or scaleu_s.numel() != 1:
        raise InstDiffError(
            f"ScaleU expects h (B,{scaleu_b.numel()},H,W) and skip (B,C,H,W); got h {tuple(h.shape)}, "
            f"skip {tuple(hs.shape)}, scaleu_s with {scaleu_s.numel()} elements"
        )
    b = torch.tanh(scaleu_b.float().to(h.device)) + 1
    s = torch.tanh(scaleu_s.float()) + 1
    return (h.float() * b[None, :, None, None]).to(h.dtype), fourier_filter(hs, s, fft)


class ScaleU(nn.Module):
    """The 12 (scaleu_b_i, scaleu_s_i) parameter pairs, named like the official keys."""

    def __init__(self, channels_per_block=SCALEU_CHANNELS):
        super().__init__()
        for i, channels in enumerate(channels_per_block):
            self.register_parameter(f"scaleu_b_{i}", nn.Parameter(torch.zeros(channels)))
            self.register_parameter(f"scaleu_s_{i}", nn.Parameter(torch.zeros(1)))

    def forward(self, index: int, h: torch.Tensor, hs: torch.Tensor, fft: FFTFallback | None = None):
        """apply_scaleu with the parameters of output block `index` (0..11)."""
        return apply_scaleu(h, hs, getattr(self, f"scaleu_b_{index}"), getattr(self, f"scaleu_s_{index}"), fft)
