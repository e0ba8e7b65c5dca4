"""Instance tokenizer vs every position_net reference case and drop config; strict official-key loading."""
import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from instdiff_model.errors import InstDiffError
from instdiff_model.layout import Instance, Layout
from instdiff_model.position_net import DROP_CONFIGS, InstanceTokenizer, choose_drop_config
from tools.formula import formula_tensor
from tools.official_keys import load_position_net
from refpaths import vectors_dir

INPUTS = ("boxes", "masks", "positive_embeddings", "scribbles", "polygons", "segs", "points")
CASES = sorted(p.stem for p in vectors_dir().glob("position_net_*.json"))
OFFICIAL = [
    line.split("\t") for line in (vectors_dir().parent / "instancediffusion_keys.tsv").read_text().splitlines()
    if line.startswith("position_net.")
]


@pytest.fixture(scope="module")
def net(formula_tokenizer):
    torch.set_num_threads(2)
    return formula_tokenizer


def _case(name):
    meta = json.loads((vectors_dir() / f"{name}.json").read_text())
    return meta, load_file(str(vectors_dir() / f"{name}.safetensors"))


def _drop_name(flags):
    want = (flags["test_drop_boxes"], flags["test_drop_points"], flags["test_drop_scribbles"], flags["test_drop_masks"])
    return next(n for n, v in DROP_CONFIGS.items() if v == want)


def test_state_dict_keys_and_shapes_equal_official():
    sd = InstanceTokenizer().state_dict()
    official = {k[len("position_net."):]: json.loads(shape) for k, shape, _ in OFFICIAL}
    assert len(official) == 217
    assert {k: list(v.shape) for k, v in sd.items()} == official


@pytest.mark.parametrize("name", CASES)
def test_reference_case_all_configs(net, name):
    meta, t = _case(name)
    assert meta["configs"]
    for cfg, info in meta["configs"].items():
        with torch.no_grad():
            objs, drop_box_mask = net(*[t["in." + k] for k in INPUTS], drop=_drop_name(info["drop_flags"]))
        assert objs.shape == t[f"out.objs__{cfg}"].shape and objs.shape[1:] == (184, 768)
        torch.testing.assert_close(objs, t[f"out.objs__{cfg}"], atol=1e-4, rtol=0)
        assert drop_box_mask is info["returned_drop_box_mask"]


def test_global_torch_rng_untouched_and_segs_any_size(net):
    meta, t = _case("position_net_iii_all_formats")
    inputs = [t["in." + k] for k in INPUTS]
    state = torch.random.get_rng_state()
    with torch.no_grad():
        ref, _ = net(*inputs, drop="sd15")
        inputs[5] = torch.nn.functional.interpolate(inputs[5], 512, mode="nearest")
        big, _ = net(*inputs, drop="sd15")
    assert torch.equal(torch.random.get_rng_state(), state)
    torch.testing.assert_close(big, ref, atol=1e-5, rtol=0)
    torch.testing.assert_close(ref, t["out.objs__sd15"], atol=1e-4, rtol=0)


def test_unknown_drop_config_refused(net):
    _, t = _case("position_net_iv_empty")
    with pytest.raises(InstDiffError, match="unknown drop config"):
        net(*[t["in." + k] for k in INPUTS], drop="boxes")


def test_load_official_accepts_both_prefixes_and_lists_bad_keys(net):
    keys = {"position_net." + k: v for k, v in net.state_dict().items()}
    assert torch.equal(keys["position_net.in_conv.weight"], formula_tensor("position_net.in_conv.weight", (3, 30, 3, 3)))
    a = InstanceTokenizer()
    load_position_net(a, keys)
    assert torch.equal(a.in_conv.weight, keys["position_net.in_conv.weight"])
    b = InstanceTokenizer()
    load_position_net(b, {k[len("position_net."):]: v for k, v in keys.items()})
    assert torch.equal(b.null_seg_feature, keys["position_net.null_seg_feature"])
    bad = dict(keys)
    del bad["position_net.null_point_feature"]
    bad["position_net.extra.weight"] = torch.zeros(1)
    bad["position_net.in_conv.bias"] = torch.zeros(4)
    bad["input_blocks.1.1.norm.weight"] = torch.zeros(3)  # non-position-net keys of a whole UNet are ignored
    with pytest.raises(InstDiffError) as err:
        load_position_net(InstanceTokenizer(), bad)
    msg = str(err.value)
    assert "missing (1): null_point_feature" in msg
    assert "unexpected (1): extra.weight" in msg
    assert "in_conv.bias (4,) (expected (3,))" in msg
    assert "input_blocks" not in msg


def test_choose_drop_config():
    m = np.array([[1, 0], [0, 0]], bool)
    box = Instance("a", box=[0, 0, 1, 1])
    assert choose_drop_config(Layout(2, 2, "", [box])) == "box"
    assert choose_drop_config(Layout(2, 2, "", [box, Instance("p", point=[1, 1])])) == "box"
    assert choose_drop_config(Layout(2, 2, "", [Instance("p", point=[1, 1])])) == "point"
    assert choose_drop_config(Layout(2, 2, "", [box, Instance("m", mask=m)])) == "sd15"
    assert choose_drop_config(Layout(2, 2, "", [Instance("q", polygon=[[0, 0], [2, 0], [1, 2]])])) == "sd15"
    assert choose_drop_config(Layout(2, 2, "", [Instance("m", mask=m), Instance("s", scribble=[[0, 0], [1, 1]])])) == "scribble"
