"""The MIS contract: caption conds travel beside the grounding (tokenizer -> Apply -> patch -> sampler), not in it."""
import dataclasses
import types

import pytest
import torch


class FakeClip:
    """CLIP-L as the host's CLIP object shows it to encode_captions: a cond and an unprojected pooled output."""

    def tokenize(self, text):
        return {"l": text}

    def encode_from_tokens(self, tokens, return_pooled):
        seed = sum(map(ord, tokens["l"]))
        g = torch.Generator().manual_seed(seed)
        return torch.randn(1, 77, 768, generator=g), torch.randn(1, 768, generator=g)


@pytest.fixture(scope="module")
def env(tiny):
    mod = tiny.mod
    L = mod("instdiff_model.layout")
    layout = L.Layout(width=128, height=128, caption="c", instances=[
        L.Instance(caption="a cube", box=(8, 10, 60, 70)), L.Instance(caption="a ball", box=(70, 60, 50, 60))])
    return types.SimpleNamespace(mod=mod, model=tiny.unet(5), instdiff=tiny.instdiff("mis-contract"), layout=layout)


def tokenize(env):
    node = env.mod("nodes.tokenizer").InstanceTokenizerNode()
    return node.tokenize(FakeClip(), [env.layout], env.instdiff, "auto", 0)[0]


def apply(env, instance_conditioning):
    node = env.mod("nodes.apply").ApplyInstanceDiffusion()
    return node.apply(env.model, env.instdiff, instance_conditioning, 1.0, 0.0, True, False)[0]


def run_mis(env, model):
    cond = [[torch.randn(1, 77, 768, generator=torch.Generator().manual_seed(9)), {}]]
    latent = {"samples": torch.zeros(1, 4, 16, 16)}
    node = env.mod("nodes.sampler").InstanceDiffusionKSampler()
    return node.sample(model, 0, 2, 5.0, "euler", "normal", cond, cond, latent, 1.0, 0.5, 0)[0]["samples"]


def test_the_tokenizer_output_carries_the_captions_beside_the_grounding(env):
    out = tokenize(env)
    grounding_cls = env.mod("instdiff_model.grounding").Grounding
    assert isinstance(out.grounding, grounding_cls)
    assert {f.name for f in dataclasses.fields(grounding_cls)}.isdisjoint({"captions", "instance_conds"})
    expected = [FakeClip().encode_from_tokens({"l": inst.caption}, "unprojected")[0] for inst in env.layout.instances]
    assert len(out.captions) == 2 and all(torch.equal(a, b) for a, b in zip(out.captions, expected))


def test_the_patch_keeps_the_captions_through_with_grounding(env):
    sampler = env.mod("nodes.sampler")
    out = tokenize(env)
    patched = apply(env, out)
    patch = sampler.find_fuser_patch(patched)
    assert patch.conditioning is out and patch.grounding is out.grounding and patch.conditioning.captions == out.captions
    other = dataclasses.replace(out.grounding)
    moved = sampler.find_fuser_patch(sampler.with_grounding(patched, other))
    assert moved.grounding is other and moved.conditioning.captions == out.captions
    assert torch.isfinite(run_mis(env, patched)).all()


def test_mis_on_a_patch_without_captions_names_the_fix(env):
    errors = env.mod("instdiff_model.errors")
    patched = apply(env, env.mod("nodes.tokenizer").InstanceConditioning(tokenize(env).grounding))  # no captions
    with pytest.raises(errors.InstDiffError, match="carries 0 caption conditioning.*connect the Instance Tokenizer"):
        run_mis(env, patched)
