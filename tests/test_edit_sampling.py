"""Our patch and the MIS sampler under the host's denoise masks, img2img denoise < 1, and SD1.5 inpainting UNets."""
# In-process on the tiny random UNet: the host's own sampling functions, our Apply and MIS KSampler nodes.
import importlib

import pytest
import torch


@pytest.fixture(scope="module")
def env(tiny):
    env = tiny.env(4, "edit-sampling", tiny.layout((8, 16, 48, 64), (72, 40, 48, 72)), grounding=True)
    env.captions = [torch.randn(1, 77, 768, generator=torch.Generator().manual_seed(i)) for i in range(2)]
    env.cond = [[torch.randn(1, 77, 768, generator=torch.Generator().manual_seed(9)), {}]]
    env.neg = [[torch.randn(1, 77, 768, generator=torch.Generator().manual_seed(8)), {}]]
    env.latent = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(7))
    mask = torch.zeros(1, 128, 128)
    mask[:, :, :48] = 1  # left 6 latent columns; bilinear resizing leaves columns >= 7 exactly 0
    env.mask = mask
    return env


def run(env, model, mis=None, sampler="euler", denoise=1.0, mask=True, latent=None, positive=None, steps=4):
    """The MIS KSampler node (mis > 0), or the host's stock sampling on our patched MODEL (mis None)."""
    image = {"samples": env.latent if latent is None else latent}
    if mask:
        image["noise_mask"] = env.mask
    positive = positive or env.cond
    if mis is None:
        comfy = importlib.import_module("comfy.sample")  # importable once the pack fixture set up the host
        noise = comfy.prepare_noise(image["samples"], 3)
        return comfy.sample(model, noise, steps, 6.0, sampler, "normal", positive, env.neg, image["samples"],
                                   denoise=denoise, noise_mask=image.get("noise_mask"), seed=3)
    node = env.mod("nodes.sampler").InstanceDiffusionKSampler()
    return node.sample(model, 3, steps, 6.0, sampler, "normal", positive, env.neg, image, denoise, mis, 0)[0]["samples"]


def relative(a, b):
    return float((a - b).abs().max() / b.abs().max())


@pytest.mark.parametrize("mis, sampler", [(None, "euler"), (0.5, "euler"), (0.5, "euler_ancestral"), (0.5, "dpmpp_2m")])
@pytest.mark.parametrize("denoise", [1.0, 0.6])
def test_a_denoise_mask_keeps_the_latent_outside_it(env, mis, sampler, denoise):
    """As one host run: outside the noise mask the result is the input latent (to float rounding), inside it is new."""
    model = env.apply(env.grounding, captions=env.captions)
    out = run(env, model, mis, sampler, denoise)
    assert relative(out[..., 7:], env.latent[..., 7:]) < 1e-5
    assert relative(out[..., :6], env.latent[..., :6]) > 0.05


def test_mis_with_a_mask_follows_the_host_run_inside_it(env):
    """MIS at 0 is the host's run; at 0.5 with a mask it differs from it only where the mask lets it."""
    model = env.apply(env.grounding, captions=env.captions)
    stock = run(env, model, None)
    assert torch.equal(run(env, model, 0.0), stock)
    mis = run(env, model, 0.5)
    assert relative(mis[..., :6], stock[..., :6]) > 1e-3


@pytest.mark.parametrize("mis", [None, 0.5])
def test_img2img_gate_follows_the_noise_level(env, mis):
    """grounding_full 0.5: a run from denoise 0.4 starts below half the noise (gate off at every step, as if
    grounding were off); from 0.8 its first steps are grounded. A gate that counted steps would ground both."""
    off = run(env, env.apply(env.grounding, full=0.0, captions=env.captions), mis, mask=False, denoise=0.4)
    half = env.apply(env.grounding, full=0.5, captions=env.captions)
    assert torch.equal(run(env, half, mis, mask=False, denoise=0.4), off)
    off = run(env, env.apply(env.grounding, full=0.0, captions=env.captions), mis, mask=False, denoise=0.8)
    assert relative(run(env, half, mis, mask=False, denoise=0.8), off) > 1e-3


def inpainting_conds(env, cond):
    """What InpaintModelConditioning adds to a conditioning: the masked image's latent and the mask."""
    masked = env.latent * (1 - torch.nn.functional.interpolate(env.mask[None], size=(16, 16)))[0]
    return [[cond[0][0], dict(cond[0][1], concat_latent_image=masked, concat_mask=env.mask[None])]]


@pytest.mark.parametrize("mis", [None, 0.5])
def test_sd15_inpainting_unets_are_accepted_and_grounded(env, tiny, mis):
    random_models = importlib.import_module("scripts.random_models")
    unet = random_models.random_sd15_model(4, 32, in_channels=9)
    assert unet.model.inpaint_model and unet.model.diffusion_model.input_blocks[0][0].in_channels == 9
    grounded = env.apply(env.grounding, captions=env.captions, model=unet)
    inert = env.apply(env.grounding, full=0.0, captions=env.captions, model=unet)
    positive = inpainting_conds(env, env.cond)
    ours = run(env, grounded, mis, positive=positive)
    assert torch.isfinite(ours).all()
    assert relative(ours[..., 7:], env.latent[..., 7:]) < 1e-5
    assert relative(ours, run(env, inert, mis, positive=positive)) > 1e-3, "InstanceDiffusion made no difference"
