"""InstanceDiffusionModel: official key mapping, strict loading, fusers/ScaleU in transformer_index order."""
import json

import pytest
import torch
from safetensors.torch import load_file

from instdiff_model.blocks import FUSER_BLOCKS
from instdiff_model.errors import InstDiffError
from instdiff_model.model import InstanceDiffusionModel
from tools.formula import formula_tensor, official_state_dict
from refpaths import official_keys, unet_dir


def _meta_model():
    with torch.device("meta"):
        return InstanceDiffusionModel()


def _constants(spec):
    """A distinct constant per key, as zero-memory expanded views."""
    return {k: torch.full((1,) * len(shape), float(i)).expand(shape) for i, (k, shape) in enumerate(spec.items())}


def test_official_keys_and_mapping():
    model = _meta_model()
    spec = official_keys()
    assert model.official_spec() == spec
    sd = _constants(spec)
    model.load_official(sd)
    index = {k: i for i, k in enumerate(spec)}
    assert model.fusers[6].attn.to_q.weight[0, 0] == index["middle_block.1.transformer_blocks.0.fuser.attn.to_q.weight"]
    assert model.fusers[15].ff.net[2].bias[0] == index["output_blocks.11.1.transformer_blocks.0.fuser.ff.net.2.bias"]
    assert model.scaleu.scaleu_s_11[0] == index["scaleu_s_11"]
    assert model.position_net.pos_embedding[0, 0, 0] == index["position_net.pos_embedding"]
    assert [f.linear.out_features for f in model.fusers] == [c for _, c in FUSER_BLOCKS]
    back = official_state_dict(model)
    assert set(back) == set(spec) and all(back[k][(0,) * back[k].ndim] == index[k] for k in spec)


def test_load_official_is_strict():
    model = _meta_model()
    sd = _constants(official_keys())
    del sd["scaleu_b_0"]
    sd["fusers.0.linear.weight"] = torch.zeros(1)
    with pytest.raises(InstDiffError, match=r"missing \(1\): scaleu_b_0.*unexpected \(1\): fusers.0.linear.weight"):
        model.load_official(sd)


def test_fusers_and_scaleu_against_c2_debug():
    """Transformer index 2 / 6 / 7 and ScaleU 0 / 5 of a loaded model reproduce the official intermediates."""
    salt = json.loads((unet_dir() / "pub_c2_nonsquare.json").read_text())["formula_salt"]
    debug = load_file(unet_dir() / "pub_c2_nonsquare_debug.safetensors")
    objs = load_file(unet_dir() / "pub_c2_nonsquare.safetensors")["grounding_tokens"]
    spec = official_keys()
    formula = ("input_blocks.4.1.", "middle_block.1.", "output_blocks.3.1.", "scaleu_b_0", "scaleu_s_0",
               "scaleu_b_5", "scaleu_s_5")
    sd = _constants(spec)
    sd.update({k: formula_tensor(k, shape, salt) for k, shape in spec.items() if k.startswith(formula)})
    model = _meta_model()
    model.load_official(sd)
    with torch.no_grad():
        for name, index in (("fuser_in4", 2), ("fuser_mid", 6), ("fuser_out3", 7)):
            out = model.fusers[index](debug[f"{name}.x_in"], objs)
            torch.testing.assert_close(out, debug[f"{name}.x_out"], atol=1e-4, rtol=1e-5)
        for name, index in (("scaleu0", 0), ("scaleu5", 5)):
            h, skip = model.scaleu(index, debug[f"{name}.h_in"], debug[f"{name}.skip_in"])
            torch.testing.assert_close(torch.cat([h, skip], 1), debug[f"{name}.cat_out"], atol=1e-4, rtol=1e-5)
