"""Patch semantics in-process: clone safety, per-frame grounding, gate schedule, refusals of wrong models / CLIPs."""
import types

import pytest
import torch

from tolerance import assert_rel_differs


@pytest.fixture(scope="module")
def env(tiny):
    return tiny.env(3, "inproc")


def grounding_for(env, layouts):
    g = env.mod("instdiff_model.grounding")
    emb = [torch.randn(len(l.instances), 768, generator=torch.Generator().manual_seed(i)) for i, l in enumerate(layouts)]
    return g.build_grounding(env.instdiff.position_net, layouts, emb, "sd15", 0)


def box_layout(env, x):
    L = env.mod("instdiff_model.layout")
    return L.Layout(width=128, height=128, caption="c", instances=[L.Instance(caption="a cube", box=(x, 10, 40, 40))])


def unet_eps(model, x, t, ctx):
    opts = dict(model.model_options.get("transformer_options", {}), cond_or_uncond=[0], sigmas=None)
    return model.model.diffusion_model(x, timesteps=t, context=ctx, transformer_options=opts)


def test_apply_clones_and_leaves_the_input_model_unchanged(env):
    g = torch.Generator().manual_seed(0)
    x, ctx, t = torch.randn(1, 4, 16, 16, generator=g), torch.randn(1, 77, 768, generator=g), torch.tensor([500.0])
    before_eps = unet_eps(env.model, x, t, ctx)
    before_opts = repr(env.model.model_options)
    patched = env.apply(grounding_for(env, [box_layout(env, 10)]))
    assert patched is not env.model and repr(env.model.model_options) == before_opts
    assert torch.equal(unet_eps(env.model, x, t, ctx), before_eps)
    assert_rel_differs(unet_eps(patched, x, t, ctx), before_eps, 1e-3, "Apply")
    # cloning the patched model shares the fuser weights instead of deep-copying them
    again = patched.clone()
    fp = again.model_options["transformer_options"]["patches"]["middle_patch"][0]
    assert fp.instdiff is env.instdiff


def test_per_frame_layouts_give_each_latent_its_own_tokens(env):
    patch = env.mod("nodes.patch")
    layouts = [box_layout(env, 10 + 20 * i) for i in range(4)]
    grounding = grounding_for(env, layouts)
    seen = []

    class Recorder(torch.nn.Module):
        def forward(self, x, objs, scale, mask, attention=None):
            seen.append(objs.clone())
            return x

    fake = types.SimpleNamespace(fusers=[Recorder()] * 16)
    fp = patch.FuserPatch(fake, env.mod("nodes.tokenizer").InstanceConditioning(grounding), lambda sigmas: 1.0, False)
    x = torch.zeros(8, 16, 32)
    fp(x, {"transformer_index": 0, "cond_or_uncond": [1, 0], "sigmas": None, "original_shape": [4, 4, 4, 4]})
    objs = seen[0]
    for i in range(4):
        assert torch.equal(objs[i], grounding.null_tokens[0])  # uncond chunk first
        assert torch.equal(objs[4 + i], grounding.tokens[i])
    assert not torch.equal(grounding.tokens[0], grounding.tokens[1])
    with pytest.raises(ValueError, match="exactly one layout per image"):
        fp(torch.zeros(6, 16, 32), {"transformer_index": 0, "cond_or_uncond": [1, 0], "sigmas": None})


def test_gate_schedule_follows_sampling_progress(env):
    patch = env.mod("nodes.patch")
    ms = patch.model_sampling_of(env.model)
    gate = patch.GateSchedule(ms, 0.5, 0.2)
    sig = lambda p: torch.tensor([ms.percent_to_sigma(p)])  # noqa: E731
    assert gate(sig(0.01)) == 1.0 and gate(sig(0.49)) == 1.0
    assert gate(sig(0.6)) == pytest.approx(0.5, abs=0.01)
    assert gate(sig(0.75)) == 0.0 and gate(None) == 1.0


def test_refuses_models_that_are_not_sd15(env, pack):
    import comfy.supported_models as sm
    apply = env.mod("nodes.apply")
    for cls, cfg in [(sm.SDXL, {"model_channels": 320, "use_linear_in_transformer": True, "context_dim": 2048,
                                 "adm_in_channels": 2816, "transformer_depth": [0, 0, 2, 2, 10, 10]}),
                     (sm.SD20, {"model_channels": 320, "use_linear_in_transformer": True, "context_dim": 1024,
                                "adm_in_channels": None, "transformer_depth": [1, 1, 1, 1, 1, 1, 0, 0]})]:
        fake = types.SimpleNamespace(model=types.SimpleNamespace(model_config=cls(cfg)))
        with pytest.raises(ValueError, match=f"SD1.5 models only, but this MODEL is {cls.__name__}"):
            apply.check_sd15(fake, env.instdiff)
    with pytest.raises(ValueError, match="base channels"):
        apply.check_sd15(env.model, types.SimpleNamespace(model_channels=320))


def test_refuses_a_clip_that_is_not_clip_l(env):
    import comfy.sd
    try:
        from comfy import sd2_clip  # 2024 host
    except ImportError:
        from comfy.text_encoders import sd2_clip  # 2026 host
    clip = comfy.sd.CLIP(no_init=True)
    clip.tokenizer, clip.tokenizer_options = sd2_clip.SD2Tokenizer(), {}  # what no_init leaves unset (2026)
    with pytest.raises(ValueError, match="not SD1.5's CLIP-L"):
        env.mod("nodes.clip_text").encode_captions(clip, ["a cat"])
