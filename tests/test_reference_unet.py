"""Whole-UNet exactness: the host's own SD1.5 UNet patched by our nodes' patch objects vs the official outputs."""
import importlib
import json

import pytest
import torch
from safetensors.torch import load_file

from refpaths import unet_dir, vectors_dir
from tools.formula import fill_module, formula_model

ATOL_UNET = 1e-4  # unet/README.md: ~10x the implementation-variant noise


@pytest.fixture(scope="module")
def build(pack, tiny):
    """salt -> (filled host UNet, filled InstanceDiffusionModel), cached per salt. Slow by nature: the whole SD1.5 UNet
    (860M values) is filled by the formula, as the reference vectors were made; the position net of salt "" (all
    cases today) is the session's formula tokenizer."""
    import comfy.supported_models
    name = pack.__name__
    random_models = importlib.import_module("scripts.random_models")
    model_mod = importlib.import_module(name + ".instdiff_model.model")
    cache = {}

    def get(salt):
        if salt not in cache:
            cache.clear()
            base = comfy.supported_models.SD15(random_models.sd15_unet_config()).get_model({})
            unet = base.diffusion_model.eval()
            fill_module(unet, salt)
            instdiff = tiny.instdiff(salt, 320) if salt == "" else formula_model(model_mod.InstanceDiffusionModel, salt)
            cache[salt] = (unet, instdiff)
        return cache[salt]
    return get


def conditioning(pack, grounding):
    """The Instance Tokenizer's output value around a grounding (what Apply's patch holds)."""
    return importlib.import_module(pack.__name__ + ".nodes.tokenizer").InstanceConditioning(grounding)


def run_unet(pack, unet, instdiff, x, t, context, tokens, null_tokens, gate, scaleu, cond=True):
    name = pack.__name__
    patch = importlib.import_module(name + ".nodes.patch")
    grounding_mod = importlib.import_module(name + ".instdiff_model.grounding")
    grounding = grounding_mod.Grounding(tokens=tokens, null_tokens=null_tokens,
                                        regions=torch.zeros(tokens.shape[0], 30, 8, 8, dtype=torch.bool),
                                        present=torch.zeros(tokens.shape[0], 30, dtype=torch.bool), drop="sd15")
    patches = {"middle_patch": [patch.FuserPatch(instdiff, conditioning(pack, grounding), lambda sigmas: gate, False)]}
    if scaleu:
        patches["output_block_patch"] = [patch.ScaleUPatch(instdiff)]
    options = {"patches": patches, "cond_or_uncond": [0 if cond else 1], "sigmas": None}
    with torch.no_grad():
        return unet(x, timesteps=t.float(), context=context, transformer_options=options)


def unet_cases():
    folder = unet_dir()
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob("*.json") if "case" in json.loads(p.read_text()))


def case_id(p):
    return p.stem


@pytest.mark.parametrize("case_json", unet_cases(), ids=case_id)
def test_unet_case(pack, build, case_json):
    meta = json.loads(case_json.read_text())
    for key in ("fuser_gate_scale", "scaleu_enabled", "formula_salt", "file"):
        assert key in meta, f"{case_json.name}: unknown case layout (no {key!r}); this test cannot interpret it"
    folder = case_json.parent
    inputs = load_file(folder / meta.get("inputs_from", meta["file"]))
    expected = load_file(folder / meta["file"])["eps"]
    unet, instdiff = build(meta["formula_salt"])
    tokens = inputs["grounding_tokens"]
    eps = run_unet(pack, unet, instdiff, inputs["x"], inputs["timesteps"], inputs["context"], tokens,
                   torch.zeros(1, *tokens.shape[1:]), float(meta["fuser_gate_scale"]), bool(meta["scaleu_enabled"]))
    err = (eps - expected).abs().max().item()
    assert torch.isfinite(eps).all()
    assert err <= ATOL_UNET, f"{case_json.stem}: max |diff| {err:.3g} > {ATOL_UNET}"


def vector_unet_cases():
    folder = vectors_dir()
    if not (folder / "index.json").exists():
        return []
    return [c for c in json.loads((folder / "index.json").read_text())["cases"] if c.startswith("unet")]


@pytest.mark.parametrize("case", vector_unet_cases())
def test_vectors_unet_end_to_end(pack, build, case):
    folder = vectors_dir()
    meta = json.loads((folder / f"{case}.json").read_text())
    salt = meta.get("weights", {}).get("formula_salt", json.loads((folder / "index.json").read_text()).get("formula_salt", ""))
    data = load_file(folder / f"{case}.safetensors")
    unet, instdiff = build(salt)
    preprocess = importlib.import_module(pack.__name__ + ".instdiff_model.preprocess")
    flags = meta.get("test_drop_flags", "sd15").split()[0]
    known = {"eps_alpha1", "eps_alpha1_null_grounding", "eps_alpha0"}
    outputs = {k[4:] for k in data if k.startswith("out.")}
    assert outputs <= known, f"{case}: unknown outputs {sorted(outputs - known)}"
    g_in = {k.split(".", 2)[2]: v for k, v in data.items() if k.startswith("in.grounding_input.")}
    with torch.no_grad():
        tokens = instdiff.position_net(**g_in, drop=flags)[0]
        null = instdiff.position_net(**preprocess.null_grounding_inputs(tokens.shape[0]), drop=flags)[0]
    runs = {"eps_alpha1": (1.0, True), "eps_alpha1_null_grounding": (1.0, False), "eps_alpha0": (0.0, True)}
    for out in sorted(outputs):
        gate, cond = runs[out]
        eps = run_unet(pack, unet, instdiff, data["in.x"], data["in.timesteps"], data["in.context"], tokens, null,
                       gate, True, cond=cond)
        err = (eps - data[f"out.{out}"]).abs().max().item()
        assert err <= 2e-3 + 1e-3 * data[f"out.{out}"].abs().max().item(), f"{case}/{out}: max |diff| {err:.3g}"
