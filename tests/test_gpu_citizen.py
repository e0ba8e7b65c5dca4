"""GPU citizenship on the CPU: the dtype policy (no run changes another's results), host model management, caches."""
import copy
import importlib

import pytest
import torch

from tolerance import assert_rel_close, assert_rel_differs, rel_err


@pytest.fixture(scope="module")
def env(tiny):
    return tiny.env(5, "citizen", tiny.layout((8, 10, 60, 70), (70, 60, 50, 60)))


def grounding(env, tokenizer=None):
    return env.ground(env.mod("nodes.tokenizer").load_position_net(env.instdiff) if tokenizer is None else tokenizer)


def patched_model(env, masked=True):
    return env.apply(grounding(env), masked)


def inputs(dtype=torch.float32):
    g = torch.Generator().manual_seed(0)
    x, ctx = torch.randn(2, 4, 16, 16, generator=g), torch.randn(2, 77, 768, generator=g)
    return x.to(dtype), torch.tensor([500.0, 500.0]), ctx.to(dtype)


def eps(model, unet, dtype=torch.float32):
    x, t, ctx = inputs(dtype)
    opts = dict(model.model_options["transformer_options"], cond_or_uncond=[1, 0], sigmas=None)
    return unet(x, timesteps=t, context=ctx, transformer_options=opts)


def fuser_patch(model):
    return model.model_options["transformer_options"]["patches"]["middle_patch"][0]


def test_fp16_and_fp8_runs_leave_weights_and_later_fp32_results_unchanged(env):
    patched = patched_model(env)
    stored = {k: v.clone() for k, v in env.instdiff.state_dict().items()}
    before = eps(patched, env.model.model.diffusion_model)
    # what the host does before an fp16 run (device, then the UNet's dtype), then an fp16 UNet call
    patched.model_patches_to(torch.device("cpu"))
    patched.model_patches_to(torch.float16)
    half_unet = copy.deepcopy(env.model.model.diffusion_model).half()
    half = eps(patched, half_unet, torch.float16)
    plain_half = eps(env.model, half_unet, torch.float16)
    assert half.dtype == torch.float16 and torch.isfinite(half).all()
    # the fusers ran (in fp16) in that call: far more than fp16 rounding (2^-11 of the magnitude)
    assert_rel_differs(half, plain_half, 1e-2, "the fusers in fp16")
    # an fp8-weight UNet: the host casts the patches to float8; our weights must not follow
    patched.model_patches_to(torch.float8_e4m3fn)
    for key, value in env.instdiff.state_dict().items():
        assert value.dtype == torch.float32 and torch.equal(value, stored[key]), key
    again = grounding(env)  # the Instance Tokenizer after those runs (crashed on fp8 before)
    assert torch.equal(again.tokens, fuser_patch(patched).grounding.tokens)
    after = eps(patched, env.model.model.diffusion_model)
    assert_rel_close(after, before, 1e-6, "fp32 after the fp16/fp8 runs")  # same batch, same weights: rounding at most


def test_weights_stored_in_half_precision_run_in_the_unet_compute_dtype(env):
    half = copy.deepcopy(env.instdiff).set_precision(torch.float16)
    assert half.fusers[0].linear.weight.dtype == torch.float16
    assert half.position_net.in_conv.weight.dtype == torch.float32  # the position net stays fp32 by default
    g = grounding(env, half.position_net)
    patch = env.mod("nodes.patch")
    conditioning = env.mod("nodes.tokenizer").InstanceConditioning(g)
    fp16, fp32 = (patch.FuserPatch(m, conditioning, lambda s: 1.0, False) for m in (half, env.instdiff))
    x = torch.randn(2, 64, 32, generator=torch.Generator().manual_seed(3))
    opts = {"transformer_index": 0, "cond_or_uncond": [1, 0], "sigmas": None, "original_shape": [2, 4, 8, 8]}
    out16, out32 = fp16(x, dict(opts)), fp32(x, dict(opts))
    assert out16.dtype == torch.float32 and half.fusers[0].linear.weight.dtype == torch.float16
    # fp16-rounded weights (2^-11 relative each), fp32 compute: a few 1e-4 of the output's magnitude, never 0
    assert 0 < rel_err(out16, out32) < 5e-3
    for dtype in (torch.bfloat16, torch.float16):  # UNets computing in bf16 / fp16: the fusers follow x
        assert fp32(x.to(dtype), dict(opts)).dtype == dtype


def sample(env, model, steps=2, callback=None, size=16):
    import comfy.sample
    g = torch.Generator().manual_seed(0)
    latent = torch.zeros(1, 4, size, size)
    noise = torch.randn(latent.shape, generator=g)
    pos, neg = [[torch.randn(1, 77, 768, generator=g), {}]], [[torch.zeros(1, 77, 768), {}]]
    return comfy.sample.sample(model, noise, steps, 5.0, "euler", "normal", pos, neg, latent, callback=callback,
                               disable_pbar=True, seed=0)


def loaded_bytes():
    import comfy.model_management as mm
    return sum(m.model_memory() for m in mm.current_loaded_models)


def test_host_accounting_counts_the_fusers_and_unload_empties_the_caches(env):
    import comfy.model_management as mm
    patched = patched_model(env)
    mm.unload_all_models()
    sample(env, env.model)
    plain = loaded_bytes()
    mm.unload_all_models()
    first = sample(env, patched)
    weights = env.mod("nodes.patch").patch_weights(env.instdiff)
    assert weights.nbytes >= sum(p.numel() * 4 for p in env.instdiff.fusers.parameters())
    assert loaded_bytes() - plain >= weights.nbytes
    fp = fuser_patch(patched)
    if not env.mod("nodes.host_api").on_sampling_cleanup(patched.clone(), "probe", lambda p: None):
        assert fp.cache.entries  # 2024 host: the run's caches live until unload or the next run
    mm.unload_all_models()
    assert not fp.cache.entries and not mm.current_loaded_models
    assert torch.equal(sample(env, patched), first)  # "Unload models" between runs changes nothing
    mm.unload_all_models()


def test_interrupted_run_leaves_no_caches(env):
    import comfy.model_management as mm
    patched = patched_model(env)
    fp = fuser_patch(patched)

    def interrupt(step, x0, x, total):
        if step == 1:
            raise mm.InterruptProcessingException()

    with pytest.raises(mm.InterruptProcessingException):
        sample(env, patched, steps=4, callback=interrupt)
    if env.mod("nodes.host_api").on_sampling_cleanup(patched.clone(), "probe", lambda p: None):
        assert not fp.cache.entries  # 2026 host: dropped by the ModelPatcher cleanup callback
    else:  # 2024 host: dropped when the next run starts (sigma rises) or on unload
        at_16 = lambda: any(k[0] in ("mask", "groups") and k[1] == 16 for k in fp.cache.entries)  # dense or grouped
        assert at_16()
        sample(env, patched, steps=1, size=8)
        assert fp.cache.entries and not at_16()
    env.mod("nodes.patch").release_caches(patched)  # what the pack's own samplers call when a run ends
    assert not fp.cache.entries
    mm.unload_all_models()


def unet_in(dtype, manual_cast=None):
    """The tiny SD1.5 UNet (same seed as the fixture's) stored in `dtype`, computing in `manual_cast` if given."""
    import comfy.model_management
    import comfy.model_patcher
    import comfy.supported_models
    random_models = importlib.import_module("scripts.random_models")
    config = comfy.supported_models.SD15(random_models.sd15_unet_config(32))
    config.set_inference_dtype(dtype, manual_cast)
    base = config.get_model({})
    random_models.randomize_(base.diffusion_model, 5)
    device = comfy.model_management.get_torch_device()
    return comfy.model_patcher.ModelPatcher(base, load_device=device, offload_device=device)


@pytest.mark.parametrize("dtype, manual_cast, compute", [
    (torch.float16, None, torch.float16), (torch.bfloat16, None, torch.bfloat16),
    (torch.float8_e4m3fn, torch.float32, torch.float32)])
def test_half_and_fp8_unets_sample_end_to_end_and_leave_fp32_runs_unchanged(env, dtype, manual_cast, compute):
    import comfy.model_management as mm
    g = grounding(env)
    fp32 = env.apply(g, True)
    before = sample(env, fp32)
    low = env.apply(g, True, model=unet_in(dtype, manual_cast))
    seen = []
    fp = fuser_patch(low)
    run = fp._fuser
    fp._fuser = lambda index, x, *a: seen.append(x.dtype) or run(index, x, *a)
    out = sample(env, low)
    assert set(seen) == {compute} and torch.isfinite(out).all()
    assert {p.dtype for p in env.instdiff.parameters()} == {torch.float32}  # fusers, ScaleU and position net
    again = grounding(env)  # the tokenizer after that run
    assert torch.equal(again.tokens, g.tokens)
    assert torch.equal(sample(env, fp32), before)
    mm.unload_all_models()
