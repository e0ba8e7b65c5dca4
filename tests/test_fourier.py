"""Fourier embedder vs the reference case (16 and 8 frequencies, frequency tables)."""
import torch
from safetensors.torch import load_file

from instdiff_model.fourier import NUM_FREQS, fourier_embed, freq_bands
from refpaths import vectors_dir

REF = load_file(str(vectors_dir() / "fourier_embedder.safetensors"))


def test_frequency_tables_are_float32_powers_of_100():
    assert NUM_FREQS == 16
    assert torch.equal(freq_bands(16), REF["out.freq_bands16"])
    assert torch.equal(freq_bands(8), REF["out.freq_bands8"])
    assert freq_bands(16)[0].item() == 1.0
    assert abs(freq_bands(16)[-1].item() - 100 ** (15 / 16)) < 1e-4


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
