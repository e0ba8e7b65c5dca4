"""The fusers run on the host's attention function (the user's backend), with the same result as plain SDPA."""
import importlib

import pytest
import torch


@pytest.fixture(scope="module")
def env(tiny):
    env = tiny.env(5, "attention", tiny.layout((8, 8, 60, 50), (50, 40, 70, 80)), grounding=True)
    env.attention = importlib.import_module("comfy.ldm.modules.attention")
    return env


CASES = [(False, 1), (True, 1), (True, 2)]  # (masked attention, latents per chunk): 2 latents share one layout frame


def eps(env, masked: bool, per: int = 1):
    """One cond + uncond UNet call of the patched model (16x16 latent: 256, 64, 16 and 4 visual tokens per fuser);
    with per = 2 both latents of the cond chunk use the one layout frame, so its mask is broadcast over them."""
    patched = env.apply(env.grounding, masked)
    g = torch.Generator().manual_seed(0)
    x, ctx = torch.randn(2 * per, 4, 16, 16, generator=g), torch.randn(2 * per, 77, 768, generator=g)
    opts = dict(patched.model_options["transformer_options"], cond_or_uncond=[0, 1], sigmas=None,
                original_shape=list(x.shape))
    return patched.model.diffusion_model(x, timesteps=torch.full((2 * per,), 500.0), context=ctx,
                                         transformer_options=opts)


class Spy:
    """Wraps a host attention function and records the shapes of the fusers' calls (query tokens, key tokens, mask);
    the host's contract is `f(q, k, v, heads, mask=None, **kwargs)` (newer hosts pass attn_precision=,
    transformer_options=, ...): the spy takes any keywords and hands them on."""

    def __init__(self, fn):
        self.fn, self.calls = fn, []
        self.__name__ = fn.__name__

    def __call__(self, q, k, v, heads, mask=None, **kwargs):
        if k.shape[1] == q.shape[1] + 184:  # the fusers' calls: N visual queries over N+184 keys
            self.calls.append((q.shape[1], k.shape[1], None if mask is None else tuple(mask.shape)))
        return self.fn(q, k, v, heads, mask=mask, **kwargs)


@pytest.fixture
def sdpa_reference(env, monkeypatch):
    """eps of the patched UNet with the fusers on plain SDPA (no attention function handed in), masked and not."""
    host_api = env.mod("nodes.host_api")
    monkeypatch.setattr(host_api, "host_attention", lambda masked: None)
    reference = {case: eps(env, *case) for case in CASES}
    monkeypatch.undo()
    return reference


@pytest.mark.parametrize("backend", ["attention_pytorch", "attention_basic", "attention_sub_quad", "attention_split"])
def test_host_backend_gives_the_sdpa_result_and_is_called(env, sdpa_reference, monkeypatch, backend):
    spy = Spy(getattr(env.attention, backend))
    monkeypatch.setattr(env.attention, "optimized_attention", spy)
    monkeypatch.setattr(env.attention, "optimized_attention_masked", spy)
    for masked, per in CASES:
        spy.calls.clear()
        out = eps(env, masked, per)
        assert {nq for nq, _, _ in spy.calls} == {256, 64, 16, 4} and len(spy.calls) >= 16  # all 16 fusers
        masks = [(nq, mask) for nq, _, mask in spy.calls if mask is not None]
        assert bool(masks) == masked and all(mask == (per, 1, nq, nq + 184) for nq, mask in masks)
        torch.testing.assert_close(out, sdpa_reference[masked, per], atol=1e-5, rtol=0)
    assert (sdpa_reference[True, 1] - sdpa_reference[False, 1]).abs().max() > 1e-4  # the mask matters here


def test_backends_that_cannot_take_our_mask_fall_back_to_host_pytorch(env, monkeypatch):
    host_attention = env.mod("nodes.host_api").host_attention

    def attention_sage(q, k, v, heads, mask=None, attn_precision=None, skip_reshape=False, **kwargs):
        raise AssertionError("sage drops masks: never used for masked attention")

    def attention_xformers(q, k, v, heads, mask=None):  # the 2024 host's form: mask padded to the query length
        raise AssertionError("never used for masked attention")

    def attention_xformers_2026(q, k, v, heads, mask=None, attn_precision=None, skip_reshape=False, **kwargs):
        return q

    attention_xformers_2026.__name__ = "attention_xformers"
    for fn, masked_choice in ((attention_sage, env.attention.attention_pytorch),
                              (attention_xformers, env.attention.attention_pytorch),
                              (attention_xformers_2026, attention_xformers_2026)):
        monkeypatch.setattr(env.attention, "optimized_attention", fn)
        monkeypatch.setattr(env.attention, "optimized_attention_masked", fn)
        assert host_attention(False) is fn
        assert host_attention(True) is masked_choice
