"""Steering: Apply's global strength and per-instance weights scale the fuser residuals, region by region."""
import pytest
import torch

A, B = (8, 8, 48, 48), (72, 64, 48, 56)  # two apart boxes on the tiny 128x128 layout
WEIGHTS = (0.0, 0.5, 1.0, 1.5, 2.0)


def latent_region(box):
    """Latent cells (16x16 latent of the 128x128 layout) well inside a box: where its instance's effect is read."""
    x, y, w, h = box
    return slice(y // 8 + 1, (y + h) // 8 - 1), slice(x // 8 + 1, (x + w) // 8 - 1)


@pytest.fixture(scope="module")
def env(tiny):
    return tiny.env(3, "weights", tiny.layout(A, B))


def weighted_layout(env, wa=1.0, wb=1.0):
    """The env's layout with weights wa, wb on its two instances (through the JSON, as the Layout node reads it)."""
    return env.mod("instdiff_model.layout").Layout.from_json(dict(env.layout.to_dict(), instances=[
        dict(i.to_dict(), weight=w) for i, w in zip(env.layout.instances, (wa, wb))]))


def weighted(env, wa=1.0, wb=1.0):
    """The grounding of weighted_layout, built as env.ground() builds the env's own."""
    emb = torch.randn(2, 768, generator=torch.Generator().manual_seed(1))
    return env.mod("instdiff_model.grounding").build_grounding(env.instdiff.position_net,
                                                               [weighted_layout(env, wa, wb)], [emb], "sd15", 0)


def patched(env, grounding, masked=False, strength=1.0, scaleu=False):
    """The Apply node's MODEL, gate at full strength; ScaleU off by default, so what differs from the plain model is
    what the fusers add (ScaleU changes every pixel alike and would hide the instance's own effect)."""
    conditioning = env.mod("nodes.tokenizer").InstanceConditioning(grounding, ())
    node = env.mod("nodes.apply").ApplyInstanceDiffusion()
    return node.apply(env.model, env.instdiff, conditioning, 1.0, 0.0, scaleu, masked, strength=strength)[0]


def unet_eps(model, x, ctx, rows=1):
    """One cond + uncond call of `model` on `rows` latents (the gate at full strength: sigmas=None)."""
    opts = dict(model.model_options["transformer_options"], cond_or_uncond=[0, 1], sigmas=None,
                original_shape=list(x.shape))
    return model.model.diffusion_model(x, timesteps=torch.full((x.shape[0],), 500.0), context=ctx,
                                       transformer_options=opts)


def inputs(rows=1):
    g = torch.Generator().manual_seed(0)
    return torch.randn(2 * rows, 4, 16, 16, generator=g), torch.randn(2 * rows, 77, 768, generator=g)


def test_strength_one_and_unit_weights_are_the_official_model(env):
    """All weights 1 (written or not) and strength 1 (given or not): no weights, no map, the same eps bit for bit;
    and the fuser without a weight is the official formula, bit for bit."""
    x, ctx = inputs()
    default = unet_eps(env.apply(env.ground()), x, ctx)
    grounding = weighted(env, 1, 1)
    assert grounding.weights is None and "weight" not in weighted_layout(env, 1, 1).to_json()
    assert torch.equal(unet_eps(patched(env, grounding, scaleu=True, strength=1.0), x, ctx), default)
    fuser = env.instdiff.fusers[0]
    t, objs = torch.randn(2, 64, 32), torch.randn(2, 184, 768)
    with torch.no_grad():
        x1 = t + torch.tanh(fuser.alpha_attn) * fuser.attn(fuser.norm1(torch.cat([t, fuser.linear(objs)], 1)),
                                                          n_query=64)
        official = x1 + torch.tanh(fuser.alpha_dense) * fuser.ff(fuser.norm2(x1))
        assert torch.equal(fuser(t, objs), official)


def test_strength_scales_the_fusers_and_zero_leaves_scaleu(env):
    x, ctx = inputs()
    grounding = env.ground()
    eps = {s: unet_eps(patched(env, grounding, strength=s, scaleu=True), x, ctx) for s in (0.0, 0.5, 1.0, 2.0)}
    scaleu_alone = patched(env, grounding, scaleu=True)
    scaleu_alone.model_options["transformer_options"]["patches"]["middle_patch"] = []
    assert torch.equal(eps[0.0], unet_eps(scaleu_alone, x, ctx))
    assert not torch.equal(eps[0.0], unet_eps(env.model, x, ctx))  # ScaleU still acts
    moved = [(eps[s] - eps[0.0]).abs().mean().item() for s in (0.5, 1.0, 2.0)]
    assert 0 < moved[0] < moved[1] < moved[2], moved


@pytest.mark.parametrize("masked", [False, True])
def test_an_instance_acts_more_with_its_weight_and_the_other_less(env, masked):
    """Its effect (eps against the plain model inside its region) grows with its weight over 0..2; moving its weight
    1 -> 2 changes the other instance's region less than its own."""
    x, ctx = inputs()
    plain = unet_eps(env.model, x, ctx)
    eps = {w: unet_eps(patched(env, weighted(env, w, 1.0), masked), x, ctx) for w in WEIGHTS}
    ys, xs = latent_region(A)
    effects = [(eps[w] - plain)[..., ys, xs].abs().mean().item() for w in WEIGHTS]
    assert all(a < b for a, b in zip(effects, effects[1:])), effects
    change = (eps[2.0] - eps[1.0]).abs()
    yb, xb = latent_region(B)
    own, other = change[..., ys, xs].mean().item(), change[..., yb, xb].mean().item()
    assert other < 0.75 * own, (own, other)  # the tiny UNet's 2x2 and 4x4 blocks spread a change widely


def test_token_weights_rules(tiny):
    """max over the instances holding a token, 1 in the background, a point-only instance on its point's cell."""
    iw = tiny.mod("instdiff_model.instance_weight")
    regions, present = torch.zeros(1, 30, 4, 4), torch.zeros(1, 30, dtype=torch.bool)
    regions[0, 0, :2, :2] = 1  # top-left quarter
    regions[0, 1, 1:3, 1:3] = 1  # overlaps the first at cell (1, 1)
    present[0, :3] = True  # slot 2: point-only
    weights = torch.ones(1, 30)
    weights[0, :3] = torch.tensor([0.5, 2.0, 3.0])
    points = torch.zeros(1, 30, 2)
    points[0, 2] = torch.tensor([0.9, 0.1])  # cell (row 0, col 3)
    w = iw.token_weights(regions, present, weights, points, 4, 4)[0, :, 0].reshape(4, 4)
    assert w[0, 0] == 0.5 and w[1, 1] == 2.0 and w[2, 2] == 2.0 and w[0, 3] == 3.0 and w[3, 3] == 1.0
    assert (w == 1).sum() == 16 - 4 - 3 - 1


def test_mis_trajectories_keep_their_instance_weight(env):
    """MIS grounding: each single-instance trajectory carries its instance's weight in slot 0; in the batched UNet
    call of the trajectories, raising instance A's weight raises its effect in the full and in its own trajectory,
    masked attention on and off."""
    mis, sampler = env.mod("instdiff_model.mis"), env.mod("nodes.sampler")
    g = mis.mis_grounding(weighted(env, 2.0, 0.5), 1)
    assert g.weights[:, 0].tolist() == [2.0, 2.0, 0.5] and g.weights[0, 1] == 0.5 and (g.weights[1:, 1:] == 1).all()
    x, ctx = inputs(3)
    ys, xs = latent_region(A)
    for masked in (False, True):
        plain = unet_eps(env.model, x, ctx)
        effects = []
        for w in (0.0, 1.0, 2.0):
            trajectories = mis.mis_grounding(weighted(env, w, 1.0), 1)
            model = sampler.with_grounding(patched(env, env.ground(), masked), trajectories)
            diff = (unet_eps(model, x, ctx) - plain)[..., ys, xs].abs()
            effects.append([diff[row].mean().item() for row in (0, 1)])  # cond rows: full, instance A alone
        for row in (0, 1):
            assert effects[0][row] < effects[1][row] < effects[2][row], effects


def test_weights_in_every_dtype(env):
    """fp16 and bf16 UNet activations: the weight map follows the dtype and a weight still acts."""
    x, ctx = inputs()
    for dtype in (torch.float16, torch.bfloat16):
        fuser = env.instdiff.fusers[0].to(dtype)
        t, objs = torch.randn(2, 64, 32, dtype=dtype), torch.randn(2, 184, 768, dtype=dtype)
        one = torch.ones(2, 64, 1, dtype=dtype)
        with torch.no_grad():
            base = fuser(t, objs)
            assert torch.equal(fuser(t, objs, weight=one), base)
            twice = fuser(t, objs, weight=2 * one)
        assert twice.dtype == dtype and (twice - t).abs().mean() > (base - t).abs().mean()
        env.instdiff.fusers[0].float()


def test_weight_field_round_trip_and_checks(tiny):
    L = tiny.mod("instdiff_model.layout")
    errors = tiny.mod("instdiff_model.errors")
    doc = {"schema": "instdiff.layout", "version": 1, "width": 64, "height": 64, "caption": "",
           "instances": [{"caption": "a", "box": [0, 0, 8, 8], "weight": 1.5}, {"caption": "b", "point": [4, 4]}]}
    layout = L.Layout.from_json(doc)
    assert [i.weight for i in layout.instances] == [1.5, 1.0]
    assert layout.to_dict()["instances"][0]["weight"] == 1.5 and "weight" not in layout.to_dict()["instances"][1]
    for bad, words in ((3.5, "outside 0..3"), (-1, "outside 0..3"), ("2", "expected a number"), (True, "number")):
        doc["instances"][0]["weight"] = bad
        with pytest.raises(errors.InstDiffError, match=words):
            L.Layout.from_json(doc)


def test_weights_through_keyframes_seeds_and_add_nodes(tiny):
    L, kf = tiny.mod("instdiff_model.layout"), tiny.mod("instdiff_model.keyframes")
    nodes = tiny.mod("nodes.layout")
    first = L.Layout(64, 64, "", [L.Instance(caption="a", box=(0, 0, 8, 8), weight=0.0)])
    last = L.Layout(64, 64, "", [L.Instance(caption="a", box=(8, 8, 8, 8), weight=2.0)])
    assert [f.instances[0].weight for f in kf.interpolate_keyframes([(0, first), (4, last)], 5)] == \
        [0.0, 0.5, 1.0, 1.5, 2.0]
    merged, _ = L.merge_seed(last, L.Layout(128, 128, ""), [], set())
    assert merged.instances[0].weight == 2.0
    (out,) = nodes.AddBoxInstance().add([first], "b", 1, 1, 8, 8, weight=2.5)
    (out,) = nodes.AddPointInstance().add(out, "c", 3, 3, weight=0.5)
    assert [i.weight for i in out[0].instances] == [0.0, 2.5, 0.5]
    for cls in (nodes.AddBoxInstance, nodes.AddPointInstance, nodes.AddShapeInstance, nodes.AddMaskInstance):
        assert cls.INPUT_TYPES()["optional"]["weight"][1]["tooltip"]


@pytest.mark.parametrize("mis", [None, 0.5])
def test_a_weighted_workflow_runs_on_the_host_and_the_weight_acts(host, mis):
    """Headless: a layout with instance 0 at weight 2 changes the sampled latent more inside its box than inside the
    other instance's; weight 1 written out and strength 1 given are the unweighted run exactly; with and without MIS."""
    import json

    from safetensors.torch import load_file
    from workflows_api import grounded_prompt

    instances = [{"caption": "a red cube", "box": list(A)}, {"caption": "a blue ball", "box": list(B)}]

    def latent(weights, strength=None):
        insts = [dict(inst, **({} if w is None else {"weight": w})) for inst, w in zip(instances, weights)]
        prompt, ids = grounded_prompt(insts, mis=mis, steps=2, preview=False)
        if strength is not None:
            (apply,) = [n for n in prompt.values() if n["class_type"] == "ApplyInstanceDiffusion"]
            apply["inputs"]["strength"] = strength
        (path,) = host.output_files(host.run(prompt), ids["latent"], kind="latents")
        return load_file(path)["latent_tensor"], prompt

    base, prompt = latent((None, None))
    assert "weight" not in json.dumps(prompt)
    if mis is None:  # (the same code path under MIS: one run fewer on the slow host)
        assert torch.equal(latent((1.0, 1.0), strength=1.0)[0], base)
    change = (latent((2.0, None))[0] - base).abs()[0].mean(0)
    own, other = (change[latent_region(box)].mean().item() for box in (A, B))
    assert own > 1e-4 and other < own, (own, other)


def test_weights_through_bounding_boxes_and_the_preview(tiny):
    """Layout to Bounding Boxes writes metadata.weight (only when not 1), Layout from detections reads it back; the
    Layout Preview labels a weighted instance (its picture differs only by that label)."""
    import numpy as np
    L, interop = tiny.mod("instdiff_model.layout"), tiny.mod("instdiff_model.interop")
    preview = tiny.mod("nodes.preview")
    layout = L.Layout(128, 128, "", [L.Instance(caption="a", box=(8, 8, 40, 40), weight=2.0),
                                     L.Instance(caption="b", box=(60, 60, 40, 40))])
    (boxes,) = interop.layout_to_bounding_boxes([layout])
    assert boxes[0]["metadata"]["weight"] == 2.0 and "weight" not in boxes[1]["metadata"]
    back = interop.detections_to_instances(interop.from_bounding_box(interop.to_bounding_boxes(boxes)), 128, 128)
    assert [i.weight for i in back] == [2.0, 1.0]
    plain = L.Layout(128, 128, "", [L.Instance(caption="a", box=(8, 8, 40, 40)), layout.instances[1]])
    a, b = (np.asarray(preview.draw_layout(lay)) for lay in (layout, plain))
    differs = np.argwhere((a != b).any(-1))
    assert len(differs) and differs[:, 0].max() < 40  # only around instance 0's label, at the top of its box
