"""Fourier embedder vs the reference case (16 and 8 frequencies, frequency tables)."""
import torch
from safetensors.torch import load_file

from instdiff_model.fourier import fourier_embed, freq_bands
from refpaths import vectors_dir
from tolerance import rel_err

REF = load_file(str(vectors_dir() / "fourier_embedder.safetensors"))


def test_frequency_tables_are_float32_powers_of_100():
    for n in (1, 5, 16, 33):  # any count: f_k = 100**(k/n), k = 0..n-1 (1 first, the same ratio each step)
        f = freq_bands(n)
        exact = torch.tensor([100.0 ** (k / n) for k in range(n)], dtype=torch.float64)
        assert f.dtype == torch.float32 and f.shape == (n,) and f[0].item() == 1.0
        assert rel_err(f, exact) < 1e-6  # float32 rounding of values up to 100 (2^-24 of each, plus the pow)
    assert torch.equal(freq_bands(16), REF["out.freq_bands16"])
    assert torch.equal(freq_bands(8), REF["out.freq_bands8"])
    # the default is UniFusion's 16 frequencies: 2 * 16 features per coordinate, the same as asking for 16
    x = torch.rand(3, 4, generator=torch.Generator().manual_seed(0))
    assert fourier_embed(x).shape == (3, 4 * 2 * 16) and torch.equal(fourier_embed(x), fourier_embed(x, 16))


def test_embeddings_match_reference():
    for name, dim in (("boxes", 128), ("points", 64), ("scribbles", 1280)):
        out = fourier_embed(REF[f"in.{name}"])
        assert out.shape[-1] == dim
        torch.testing.assert_close(out, REF[f"out.{name}_emb16"], atol=1e-5, rtol=0)
    torch.testing.assert_close(fourier_embed(REF["in.boxes"], 8), REF["out.boxes_emb8"], atol=1e-5, rtol=0)


def test_block_layout_sin_then_cos_per_frequency():
    x = torch.tensor([[0.25, 0.5]])
    out = fourier_embed(x)
    f = freq_bands()
    assert torch.allclose(out[0, 0:2], torch.sin(f[0] * x[0]))
    assert torch.allclose(out[0, 2:4], torch.cos(f[0] * x[0]))
    assert torch.allclose(out[0, 4:6], torch.sin(f[1] * x[0]))
    assert torch.equal(fourier_embed(torch.zeros(1, 2))[0, 2:4], torch.ones(2))
