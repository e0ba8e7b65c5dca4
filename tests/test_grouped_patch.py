"""Grouped masked attention in the UNet: same eps as the dense mask for cond+uncond, per-frame layouts, context windows."""
import pytest
import torch


@pytest.fixture(scope="module")
def env(tiny):
    return tiny.env(11, "grouped")


@pytest.fixture
def always_group(env, monkeypatch):
    """The cost model without call and gather costs: every frame with more than one group runs grouped."""
    ga = env.mod("instdiff_model.grouped_attention")
    monkeypatch.setitem(ga.CALL_OVERHEAD_PAIRS, "cpu", 0)
    monkeypatch.setattr(ga, "GATHER_PAIRS", 0)


def layouts(env):
    L = env.mod("instdiff_model.layout")
    I = L.Instance  # noqa: E741
    frames = [[I("a cube", box=(8, 8, 60, 50)), I("a ball", box=(50, 40, 70, 80))],  # overlapping boxes
              [I("a cat", point=(30, 30)), I("a dog", box=(64, 0, 64, 128))],  # point-only + box
              [I("a tree", polygon=[[(10, 10), (120, 20), (60, 120)]]), I("a sun", box=(0, 90, 30, 30))],
              [I("a lamp", box=(20, 20, 40, 40))]]
    return [L.Layout(width=128, height=128, caption="c", instances=f) for f in frames]


def patched(env, frames, grouped):
    emb = [torch.randn(len(l.instances), 768, generator=torch.Generator().manual_seed(i)) for i, l in enumerate(frames)]
    g = env.mod("instdiff_model.grounding").build_grounding(env.instdiff.position_net, frames, emb, "sd15", 0)
    model = env.apply(g, True)
    model.model_options["transformer_options"]["patches"]["middle_patch"][0].grouped = grouped
    return model


def eps(model, x, ctx, chunks=(1, 0), **extra):
    """One UNet call with the rows of `chunks` (1 = uncond, 0 = cond), each chunk the latents x."""
    n = x.shape[0]
    opts = dict(model.model_options["transformer_options"], cond_or_uncond=list(chunks), sigmas=None,
                original_shape=[n * len(chunks), 4, *x.shape[-2:]], **extra)
    rows = torch.cat([x] * len(chunks))
    context = torch.cat([torch.zeros_like(ctx) if c == 1 else ctx for c in chunks])
    return model.model.diffusion_model(rows, timesteps=torch.full((len(rows),), 400.0), context=context,
                                       transformer_options=opts)


def inputs(n, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 4, 16, 16, generator=g), torch.randn(n, 77, 768, generator=g)


def close(a, b, tol=1e-5):
    return ((a - b).abs().max() / b.abs().max()).item() <= tol


def test_per_frame_cond_uncond_batch_equals_dense(env, always_group):
    frames = layouts(env)
    x, ctx = inputs(len(frames))
    dense, grouped = eps(patched(env, frames, False), x, ctx), eps(patched(env, frames, True), x, ctx)
    assert close(grouped, dense)
    unmasked = env.apply(patched(env, frames, True).model_options["transformer_options"]["patches"]["middle_patch"][0]
                         .grounding, False)
    assert not close(eps(unmasked, x, ctx), dense, 1e-3)  # the mask acts here


def test_one_layout_shared_by_the_batch_and_cond_only(env, always_group):
    frames = layouts(env)[:1]
    x, ctx = inputs(3, seed=2)
    for chunks in ((0, 1), (0,)):
        assert close(eps(patched(env, frames, True), x, ctx, chunks), eps(patched(env, frames, False), x, ctx, chunks))


def test_context_window_equals_dense_and_its_frames_in_the_full_batch(env, always_group):
    frames = layouts(env)
    x, ctx = inputs(len(frames), seed=3)
    window = [0, 2, 3]
    extra = {"ad_params": {"sub_idxs": window, "context_length": 3, "full_length": 4}}
    grouped = eps(patched(env, frames, True), x[window], ctx[window], **extra)
    assert close(grouped, eps(patched(env, frames, False), x[window], ctx[window], **extra))
    full = eps(patched(env, frames, True), x, ctx)
    assert close(grouped, full[window + [4 + i for i in window]])


def test_grouped_path_builds_no_dense_mask_and_calls_unmasked_attention(env, always_group, monkeypatch):
    patch = env.mod("nodes.patch")
    attention = __import__("comfy.ldm.modules.attention", fromlist=["x"])
    frames = layouts(env)[:2]
    x, ctx = inputs(2, seed=4)
    reference = eps(patched(env, frames, False), x, ctx)
    model = patched(env, frames, True)

    def no_dense(*_a, **_k):
        raise AssertionError("the grouped path built an N x (N+184) mask")
    calls = []
    unmasked = attention.optimized_attention

    def spy(q, k, v, heads, mask=None, **kw):
        calls.append((q.shape[1], k.shape[1], mask is None))
        return unmasked(q, k, v, heads, mask=mask, **kw)
    monkeypatch.setattr(patch, "instance_attention_mask", no_dense)
    monkeypatch.setattr(attention, "optimized_attention", spy)
    assert close(eps(model, x, ctx), reference)
    grouped_calls = [c for c in calls if c[1] < c[0] + 184]
    assert grouped_calls and all(no_mask for _, _, no_mask in calls)
