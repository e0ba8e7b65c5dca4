"""Video context windows: a window of frames gets exactly those frames' grounding (AnimateDiff-Evolved and core)."""
import inspect
import types

import pytest
import torch

from tolerance import assert_rel_close, assert_rel_differs

FRAMES = 6


@pytest.fixture(scope="module")
def env(tiny):
    return tiny.env(7, "windows")


def moving_box(env, frames):
    """One layout per frame: a box sliding left to right (keyframes 0 and frames-1, interpolated)."""
    L = env.mod("instdiff_model.layout")
    key = lambda x: L.Layout(width=64, height=64, caption="c", instances=[
        L.Instance(caption="a cube", box=(x, 16, 20, 24))])
    return env.mod("instdiff_model.keyframes").interpolate_keyframes([(0, key(2)), (frames - 1, key(42))], frames)


def patched(env, layouts, masked):
    emb = [torch.randn(1, 768, generator=torch.Generator().manual_seed(0))] * len(layouts)
    g = env.mod("instdiff_model.grounding").build_grounding(env.instdiff.position_net, layouts, emb, "sd15", 0)
    return env.apply(g, masked)


def core_window(index_list):
    """Core's IndexListContextWindow (comfy/context_windows.py; 2026 cores added `total_frames=` and more), or an
    object with its fields on hosts without it."""
    try:
        from comfy.context_windows import IndexListContextWindow
    except ImportError:
        return types.SimpleNamespace(index_list=index_list, dim=0, context_length=len(index_list))
    takes = inspect.signature(IndexListContextWindow).parameters
    return IndexListContextWindow(index_list, dim=0, **({"total_frames": FRAMES} if "total_frames" in takes else {}))


def unet(model, x, ctx, extra):
    """One UNet call as the host batches it: [uncond rows | cond rows], the window options set by the windowing."""
    n = x.shape[0]
    opts = dict(model.model_options["transformer_options"], cond_or_uncond=[1, 0], sigmas=None, **extra)
    return model.model.diffusion_model(torch.cat([x, x]), timesteps=torch.full((2 * n,), 400.0),
                                       context=torch.cat([torch.zeros_like(ctx), ctx]), transformer_options=opts)


@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("convention", ["animatediff", "core"])
def test_a_window_gets_the_eps_of_its_frames_in_the_full_batch(env, convention, masked):
    model = patched(env, moving_box(env, FRAMES), masked)
    g = torch.Generator().manual_seed(1)
    x, ctx = torch.randn(FRAMES, 4, 8, 8, generator=g), torch.randn(FRAMES, 77, 768, generator=g)
    full = unet(model, x, ctx, {})
    window = [1, 2, 4, 5]
    extra = ({"ad_params": {"sub_idxs": window, "context_length": len(window), "full_length": FRAMES}}
             if convention == "animatediff" else {"context_window": core_window(window)})
    win = unet(model, x[window], ctx[window], extra)
    rows = window + [FRAMES + i for i in window]
    # same frames in a smaller batch: only fp32 reduction order differs (a few ulp of the eps' magnitude)
    assert_rel_close(win, full[rows], 1e-5, "window vs full batch")
    first = unet(model, x[window], ctx[window], {"ad_params": {"sub_idxs": [0, 1, 2, 3]}})
    assert_rel_differs(first, full[rows], 1e-4, "other frames' grounding")  # gives other eps


def test_a_window_that_does_not_fit_the_layout_is_refused(env):
    model = patched(env, moving_box(env, FRAMES), False)
    x, ctx = torch.zeros(2, 4, 8, 8), torch.zeros(2, 77, 768)
    with pytest.raises(ValueError, match="context window of 2 latents lists frames \\[5, 6\\]"):
        unet(model, x, ctx, {"ad_params": {"sub_idxs": [5, 6]}})


def test_32_keyframed_frames_sample_in_16_frame_windows(env):
    """A whole sampling run of 32 frames whose UNet calls are 16-frame windows (as AnimateDiff-Evolved runs them).
    Slow by nature (two runs of 2 steps over 64 latent rows): overlapping 16-frame windows need a 32-frame video."""
    import comfy.sample
    plain = patched(env, moving_box(env, 32), True)
    model = plain.clone()
    windows = [list(range(16)), list(range(8, 24)), list(range(16, 32))]
    seen = []

    def windowed(apply_model, args):
        x, t, c = args["input"], args["timestep"], args["c"]
        copies = x.shape[0] // 32  # cond and uncond in one call (2) or apart (1): the host decides by free memory
        out, count = torch.zeros_like(x), torch.zeros(x.shape[0], 1, 1, 1)
        for w in windows:
            rows = [k * 32 + i for k in range(copies) for i in w]
            opts = dict(c["transformer_options"], ad_params={"sub_idxs": w, "context_length": 16, "full_length": 32})
            sub = dict(c, transformer_options=opts, c_crossattn=c["c_crossattn"][rows])
            out[rows] += apply_model(x[rows], t[rows], **sub)
            count[rows] += 1
            seen.append(len(w))
        return out / count

    model.set_model_unet_function_wrapper(windowed)
    g = torch.Generator().manual_seed(2)
    latent = torch.zeros(32, 4, 8, 8)
    pos, neg = [[torch.randn(1, 77, 768, generator=g), {}]], [[torch.zeros(1, 77, 768), {}]]
    noise = torch.randn(latent.shape, generator=g)
    run = lambda m: comfy.sample.sample(m, noise, 2, 5.0, "euler", "normal", pos, neg, latent, disable_pbar=True,
                                        seed=0)
    out = run(model)
    assert seen and set(seen) == {16}
    # the UNet is per frame: windows give the full batch's result, up to fp32 rounding of the latents' magnitude
    # (~1e2 here; batch 32 vs 16 sums in another order: 4e-6 of it on an AMD EPYC)
    assert_rel_close(out, run(plain), 1e-4, "16-frame windows vs the 32-frame batch")
