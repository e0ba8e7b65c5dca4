"""ScaleU against the official reference vectors, the c2 debug intermediates and edge-case map sizes."""
import json

import pytest
import torch
from safetensors.torch import load_file

from instdiff_model.errors import InstDiffError
from instdiff_model.scaleu import ScaleU, apply_scaleu, fourier_filter
from tools.formula import formula_tensor
from refpaths import unet_dir, vectors_dir
from tolerance import rel_err


@pytest.mark.parametrize("block", sorted(int(p.stem[len("scaleu_block"):]) for p in vectors_dir().glob("scaleu_block*.json")))
def test_scaleu_vectors(block):
    data = load_file(vectors_dir() / f"scaleu_block{block}.safetensors")
    h, hs = apply_scaleu(data["in.h"], data["in.hs"], data[f"in.scaleu_b_{block}"], data[f"in.scaleu_s_{block}"])
    err = rel_err(torch.cat([h, hs], 1), data["out.h_cat"])
    print(f"scaleu_block{block}: max err {err:.2e} of the magnitude")
    assert err < 1e-6  # |h_cat| up to ~9: ~10 ulp of fp32 at that magnitude (FFT kernels differ between CPUs)


@pytest.mark.parametrize("name,block", [("scaleu0", 0), ("scaleu5", 5)])
def test_scaleu_c2_debug(name, block):
    salt = json.loads((unet_dir() / "pub_c2_nonsquare.json").read_text())["formula_salt"]
    debug = load_file(unet_dir() / "pub_c2_nonsquare_debug.safetensors")
    scaleu = ScaleU()
    for key, p in scaleu.named_parameters():
        p.data.copy_(formula_tensor(key, p.shape, salt))
    with torch.no_grad():
        h, hs = scaleu(block, debug[f"{name}.h_in"], debug[f"{name}.skip_in"])
    err = (torch.cat([h, hs], 1) - debug[f"{name}.cat_out"]).abs().max().item()
    print(f"{name}: max abs err {err:.2e}")
    torch.testing.assert_close(torch.cat([h, hs], 1), debug[f"{name}.cat_out"], atol=1e-4, rtol=1e-5)


def _filter_by_definition(x, s):
    """Float64 DFT-matrix version of the official filter (no torch.fft), Python slice semantics."""
    height, width = x.shape[-2:]
    mask = torch.ones(height, width, dtype=torch.float64)
    mask[height // 2 - 1: height // 2 + 1, width // 2 - 1: width // 2 + 1] = s
    mask = torch.roll(mask, (-(height // 2), -(width // 2)), (0, 1))  # ifftshift of the centred mask

    def dft(n, sign):
        k = torch.arange(n, dtype=torch.float64)
        return torch.exp(sign * 2j * torch.pi * k[:, None] * k[None, :] / n)

    spec = dft(height, -1) @ x.double().to(torch.complex128) @ dft(width, -1)
    back = dft(height, 1) @ (spec * mask) @ dft(width, 1) / (height * width)
    return back.real


@pytest.mark.parametrize("hw", [(1, 1), (1, 5), (4, 1), (2, 2), (3, 5), (7, 4), (8, 12)])
def test_filter_any_size(hw):
    torch.manual_seed(1)
    x = torch.randn(2, 3, *hw)
    s = torch.tensor([1.7])
    torch.testing.assert_close(fourier_filter(x, s).double(), _filter_by_definition(x, 1.7), atol=1e-5, rtol=0)


def test_filter_single_pixel_scales_it_and_dtype_kept():
    x = torch.randn(1, 2, 1, 1, dtype=torch.float64)
    torch.testing.assert_close(fourier_filter(x, torch.tensor([0.5])), 0.5 * x)
    assert fourier_filter(x.half(), torch.tensor([1.0])).dtype == torch.float16


def test_zero_params_are_identity_and_channel_mismatch_refused():
    scaleu = ScaleU()
    h, hs = torch.randn(1, 1280, 4, 6), torch.randn(1, 640, 4, 6)
    with torch.no_grad():
        h2, hs2 = scaleu(5, h, hs)
        torch.testing.assert_close(h2, h)
        torch.testing.assert_close(hs2, hs, atol=1e-5, rtol=0)
        with pytest.raises(InstDiffError):
            scaleu(10, h, hs)
