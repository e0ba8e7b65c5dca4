"""Multi-instance sampler on the host: mis=0 parity, a node-by-node slow reference, chunking, sizes."""
import pytest
import torch
from safetensors.torch import load_file

from tolerance import assert_rel_close, assert_rel_differs
from scripts.headless import PromptBuilder
from workflows_api import SIZE, grounded_prompt, layout_json, tiny_models

INSTANCES = [{"caption": f"object number {i}", "box": [8 * i, 4 * i, 40, 48]} for i in range(10)]


def latent_of(host, entry, node):
    (path,) = host.output_files(entry, node, kind="latents")
    return load_file(path)["latent_tensor"]


def test_mis_zero_is_the_stock_ksampler(host):
    prompt, ids = grounded_prompt(INSTANCES[:2], mis=0.0, preview=False)
    ours = latent_of(host, host.run(prompt), ids["latent"])
    prompt, ids = grounded_prompt(INSTANCES[:2], preview=False)
    stock = latent_of(host, host.run(prompt), ids["latent"])
    assert torch.equal(ours, stock)


def slow_reference(instances, steps, k, sampler, seed=5, width=SIZE, height=SIZE, batch=1):
    """n+1 trajectories one by one with stock KSamplerAdvanced, averaged, then finished with full conditioning."""
    b = PromptBuilder()
    models, instdiff = tiny_models(b)
    neg = b.add("CLIPTextEncode", text="blurry", clip=models[1])
    latent = b.add("EmptyLatentImage", width=width, height=height, batch_size=batch)

    def patched(insts, caption):
        layout = b.add("InstanceDiffusionLayout", width=width, height=height, caption=caption,
                       layout_json=layout_json(insts, width, height, caption))
        tok = b.add("InstanceDiffusionTokenizer", clip=models[1], layout=layout[0], instancediffusion=instdiff[0],
                    config="auto", sample_seed=0)
        return b.add("ApplyInstanceDiffusion", model=models[0], instancediffusion=instdiff[0],
                     instance_conditioning=tok[0], grounding_full=1.0, grounding_decay=0.0, scaleu=True,
                     masked_attention=False)

    common = dict(noise_seed=seed, steps=steps, cfg=7.0, sampler_name=sampler, scheduler="normal", negative=neg[0])
    full = patched(instances, "a test scene")
    trajectories = []
    for t, (insts, caption) in enumerate([(instances, "a test scene")] +
                                         [([inst], inst["caption"]) for inst in instances]):
        model = full if t == 0 else patched(insts, caption)
        pos = b.add("CLIPTextEncode", text=caption, clip=models[1])
        trajectories.append(b.add("KSamplerAdvanced", model=model[0], add_noise="enable", positive=pos[0],
                                  latent_image=latent[0], start_at_step=0, end_at_step=k,
                                  return_with_leftover_noise="enable", **common))
    mean = b.add("InstDiffTestLatentMean", **{f"latent_{i}": t[0] for i, t in enumerate(trajectories)})
    pos = b.add("CLIPTextEncode", text="a test scene", clip=models[1])
    final = b.add("KSamplerAdvanced", model=full[0], add_noise="disable", positive=pos[0], latent_image=mean[0],
                  start_at_step=k, end_at_step=10000, return_with_leftover_noise="disable", **common)
    out = b.add("SaveLatent", samples=final[0], filename_prefix="latents/slow")
    return b.prompt, out


@pytest.mark.parametrize("sampler", ["euler", "dpmpp_2m", "ddim"])
def test_batched_mis_matches_the_one_by_one_reference(host, sampler):
    steps, mis, n = 4, 0.5, 3
    prompt, ids = grounded_prompt(INSTANCES[:n], steps=steps, mis=mis, sampler=sampler, preview=False)
    ours = latent_of(host, host.run(prompt), ids["latent"])
    prompt, out = slow_reference(INSTANCES[:n], steps, int(steps * mis), sampler)
    reference = latent_of(host, host.run(prompt), out)
    assert_rel_close(ours, reference, 1e-4, "batched vs one by one")  # fp32 rounding of other batch sizes
    prompt, ids = grounded_prompt(INSTANCES[:n], steps=steps, mis=0.0, sampler=sampler, preview=False)
    no_mis = latent_of(host, host.run(prompt), ids["latent"])
    assert_rel_differs(ours, no_mis, 1e-3, "MIS")  # MIS really changed the trajectory


@pytest.mark.parametrize("n, batch, width, height", [(1, 1, SIZE, SIZE), (2, 2, SIZE, SIZE), (10, 1, 96, 160)])
def test_batched_and_chunked_agree(host, n, batch, width, height):
    insts = [dict(inst, box=[min(inst["box"][0], width - 40), min(inst["box"][1], height - 48), 40, 48])
             for inst in INSTANCES[:n]]
    runs = []
    for max_batch in (0, 1):
        prompt, ids = grounded_prompt(insts, steps=3, mis=0.67, batch=batch, width=width, height=height,
                                      max_batch=max_batch, preview=False)
        runs.append(latent_of(host, host.run(prompt), ids["latent"]))
    assert runs[0].shape == (batch, 4, height // 8, width // 8)
    assert torch.isfinite(runs[0]).all()
    assert_rel_close(runs[0], runs[1], 1e-4, "batched vs chunked")  # fp32 rounding of other batch sizes


def test_mis_needs_the_patched_model(host):
    b = PromptBuilder()
    models, _ = tiny_models(b)
    pos = b.add("CLIPTextEncode", text="x", clip=models[1])
    latent = b.add("EmptyLatentImage", width=64, height=64, batch_size=1)
    b.add("InstanceDiffusionKSampler", model=models[0], seed=0, steps=2, cfg=7.0, sampler_name="euler",
          scheduler="normal", positive=pos[0], negative=pos[0], latent_image=latent[0], denoise=1.0, mis=0.5,
          max_batch=0)
    b.add("SaveLatent", samples=[str(len(b.prompt)), 0], filename_prefix="latents/x")
    from scripts.headless import PromptError
    with pytest.raises(PromptError, match="connect the output of 'Apply InstanceDiffusion'"):
        host.run(b.prompt)
