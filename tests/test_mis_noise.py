"""MIS keeps every host sampler's noise level, slices the tokenizer's output, and reuses the full layout's points."""
# In-process, with a pass-through denoiser.
import numpy as np
import pytest
import torch
from zero_tokenizer import ZeroTokenizer

SAMPLERS = ["euler_ancestral", "dpmpp_2s_ancestral", "dpmpp_sde", "dpmpp_2m_sde", "lcm", "euler", "dpmpp_2m", "ddim"]


@pytest.fixture(scope="module")
def env(tiny):
    L = tiny.mod("instdiff_model.layout")
    layout = L.Layout(width=512, height=512, caption="a test scene", instances=[
        L.Instance(caption=f"object {i}", box=(40 + 150 * i, 60, 120, 200)) for i in range(3)])
    env = tiny.env(3, "mis-noise", layout, grounding=True)
    captions = [torch.randn(1, 77, 768, generator=torch.Generator().manual_seed(i)) for i in range(3)]
    env.model = env.apply(env.grounding, full=0.8, captions=captions)
    env.model.set_model_unet_function_wrapper(lambda apply_model, args: args["input"])  # denoised = x
    return env


def sample(env, sampler, mis, seed=3, max_batch=0, model=None):
    ksampler = env.mod("nodes.sampler").InstanceDiffusionKSampler()
    cond = [[torch.randn(1, 77, 768, generator=torch.Generator().manual_seed(9)), {}]]
    latent = {"samples": torch.zeros(1, 4, 64, 64)}
    (out,) = ksampler.sample(model or env.model, seed, 10, 7.0, sampler, "normal", cond, cond, latent, 1.0, mis, max_batch)
    return out["samples"]


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_mis_keeps_the_noise_level(env, sampler):
    """Every trajectory of a latent sees the same per-step noise: averaging them must not shrink it."""
    ratio = (sample(env, sampler, 0.36).std() / sample(env, sampler, 0.0).std()).item()
    assert ratio == pytest.approx(1.0, abs=0.03)
    if sampler in ("euler_ancestral", "dpmpp_sde"):  # chunks of trajectories replay the first chunk's noise
        assert torch.equal(sample(env, sampler, 0.36, max_batch=1), sample(env, sampler, 0.36))


def test_mis_runs_slice_the_tokenizer_output_without_preprocessing(env, monkeypatch):
    """MIS runs (two seeds on the same grounding) neither preprocess a layout nor run the position net again: the
    single-instance tokens come with the tokenizer's output."""
    calls = []
    for name in ("instdiff_model.preprocess", "instdiff_model.grounding"):
        module = env.mod(name)
        real = module.layout_to_grounding_inputs
        monkeypatch.setattr(module, "layout_to_grounding_inputs",
                            lambda *a, real=real, **k: calls.append("preprocess") or real(*a, **k))
    hook = env.instdiff.position_net.register_forward_pre_hook(lambda *a: calls.append("position net"))
    try:
        assert len(env.ground().instance_tokens[0]) == 3 and calls.count("preprocess") == 1  # the counters count
        calls.clear()
        for seed in (1, 2):
            sample(env, "euler", 0.36, seed=seed)
    finally:
        hook.remove()
    assert calls == []


class RecordingTokenizer(ZeroTokenizer):
    """Records its inputs; row b's tokens are the sum of its scribble and polygon inputs (to trace the rows)."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def forward(self, boxes, drop, **inputs):
        self.seen.append(dict(inputs, boxes=boxes))
        trace = inputs["scribbles"].sum((1, 2)) + inputs["polygons"].sum((1, 2))
        return trace[:, None, None].expand(-1, 184, 768).float(), None


def test_trajectories_reuse_the_full_layouts_sampled_points(env):
    """Instance i's trajectory gets the full layout's slot-i scribble / polygon points (official
    prepare_instance_meta slices the full meta), not points re-sampled for the instance alone."""
    mod, L = env.mod, env.mod("instdiff_model.layout")
    mask = np.zeros((128, 128), dtype=bool)
    mask[20:90, 30:110] = True
    layout = L.Layout(width=128, height=128, caption="c", instances=[
        L.Instance(caption=f"blob {i}", mask=np.roll(mask, 9 * i, axis=0)) for i in range(3)])
    emb = torch.randn(3, 768, generator=torch.Generator().manual_seed(2))
    tokenizer = RecordingTokenizer()
    grounding = mod("instdiff_model.grounding").build_grounding(tokenizer, [layout], [emb], "sd15", 7)
    (inputs,) = [seen for seen in tokenizer.seen if len(seen["boxes"]) == 3]  # the single-instance pass
    mis = mod("instdiff_model.mis").mis_grounding(grounding, 1)
    full = mod("instdiff_model.preprocess").layout_to_grounding_inputs(layout, emb, 7)
    for i in range(3):
        for name in ("scribbles", "polygons", "segs", "boxes", "positive_embeddings", "masks"):
            assert torch.equal(inputs[name][i, 0], full[name][0, i]), (i, name)
            assert not inputs[name][i, 1:].any()
        assert inputs["scribbles"][i].any() and inputs["polygons"][i].any()
        assert torch.equal(mis.tokens[1 + i], tokenizer(inputs["boxes"][i:i + 1], "sd15", **{
            k: v[i:i + 1] for k, v in inputs.items() if k != "boxes"})[0][0])
        assert torch.equal(mis.regions[1 + i, 0], grounding.regions[0, i]) and grounding.regions[0, i].any()
        assert not mis.regions[1 + i, 1:].any() and mis.present[1 + i].tolist() == [True] + [False] * 29
    assert torch.equal(mis.tokens[0], grounding.tokens[0])
