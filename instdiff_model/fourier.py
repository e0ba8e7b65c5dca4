"""Fourier embedder of normalised coordinates: [sin | cos] blocks over 16 frequencies 100**(k/F)."""
import torch

NUM_FREQS = 16


def freq_bands(num_freqs: int = NUM_FREQS, temperature: float = 100.0) -> torch.Tensor:
    """float32 frequencies temperature**(k/num_freqs), k = 0..num_freqs-1 (no 2*pi)."""
    return temperature ** (torch.arange(num_freqs, dtype=torch.float32) / num_freqs)


def fourier_embed(x: torch.Tensor, num_freqs: int = NUM_FREQS) -> torch.Tensor:
    """(..., D) -> (..., 2*num_freqs*D): for k ascending, sin(f_k x) then cos(f_k x), each over all D coordinates."""
    blocks = []
    for f in freq_bands(num_freqs).to(x.device):
        blocks.append(torch.sin(f * x))
        blocks.append(torch.cos(f * x))
    return torch.cat(blocks, dim=-1)
