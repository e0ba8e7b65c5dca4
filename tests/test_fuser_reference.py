"""Fuser (GatedSelfAttentionDense) against the official reference vectors and the c2 debug intermediates."""
import json

import pytest
import torch
from safetensors.torch import load_file

from instdiff_model.blocks import FUSER_BLOCKS, fuser_prefix
from instdiff_model.fuser import GatedSelfAttentionDense
from tools.formula import fill_module
from refpaths import unet_dir, vectors_dir


def _fuser(channels, prefix, salt=""):
    fuser = GatedSelfAttentionDense(channels)
    fill_module(fuser, salt, prefix)
    return fuser.eval()


@pytest.mark.parametrize("channels", sorted(int(p.stem.split("_")[1]) for p in vectors_dir().glob("fuser_*.json")
                                            if p.stem.split("_")[1].isdigit()))
def test_fuser_vectors(channels):
    meta = json.loads((vectors_dir() / f"fuser_{channels}.json").read_text())
    data = load_file(vectors_dir() / f"fuser_{channels}.safetensors")
    objs = load_file(vectors_dir() / "fuser_objs.safetensors")["in.objs"]
    fuser = _fuser(channels, meta["weights"]["key_prefix"], meta["weights"]["formula_salt"])
    with torch.no_grad():
        out = fuser(data["in.x"], objs)
    err = (out - data["out.out"]).abs().max().item()
    print(f"fuser_{channels}: max abs err {err:.2e}")
    assert err < 1e-4
    assert (out - data["in.x"]).abs().mean() > 0.1  # the fuser really changes x


@pytest.mark.parametrize("name,block", [("fuser_in4", "input_blocks.4.1"), ("fuser_mid", "middle_block.1"),
                                        ("fuser_out3", "output_blocks.3.1")])
def test_fuser_c2_debug(name, block):
    meta = json.loads((unet_dir() / "pub_c2_nonsquare.json").read_text())
    debug = load_file(unet_dir() / "pub_c2_nonsquare_debug.safetensors")
    objs = load_file(unet_dir() / "pub_c2_nonsquare.safetensors")["grounding_tokens"]
    index = [b for b, _ in FUSER_BLOCKS].index(block)
    fuser = _fuser(FUSER_BLOCKS[index][1], fuser_prefix(index), meta["formula_salt"])
    with torch.no_grad():
        out = fuser(debug[f"{name}.x_in"], objs)
    expected = debug[f"{name}.x_out"]
    err = (out - expected).abs().max().item()
    print(f"{name}: max abs err {err:.2e} (|x| max {expected.abs().max():.1f})")
    torch.testing.assert_close(out, expected, atol=1e-4, rtol=1e-5)


def test_scale_gates_per_sample_and_mask_all_true_is_unmasked():
    torch.manual_seed(0)
    fuser = _fuser(320, fuser_prefix(0))
    x, objs = torch.randn(3, 16, 320), torch.randn(3, 184, 768)
    with torch.no_grad():
        full = fuser(x, objs)
        gated = fuser(x, objs, scale=torch.tensor([1.0, 0.0, 0.5]))
        half = fuser(x, objs, scale=0.5)
        masked = fuser(x, objs, attn_mask=torch.ones(3, 200, 200, dtype=torch.bool))
    torch.testing.assert_close(gated[0], full[0])
    torch.testing.assert_close(gated[1], x[1])
    torch.testing.assert_close(gated[2], half[2])
    torch.testing.assert_close(masked, full, atol=1e-5, rtol=1e-5)
