"""Grounding gate on the host sampler: grounded steps (spy on the fusers) vs the official counts; one gate per call."""
# Official counts: alpha_generator grounds the first int(alpha * steps) steps.
import json
import types
from pathlib import Path

import pytest
import torch


class FuserSpy(torch.nn.Module):
    """Stands in for the 16 fusers: records the scale of every call, changes nothing."""

    def __init__(self):
        super().__init__()
        self.scales = []

    def forward(self, x, objs, scale, *args, **kwargs):
        self.scales.append(scale)
        return x


class SpyInstanceDiffusion(torch.nn.Module):
    """An InstanceDiffusion model whose 16 fusers are one spy and whose ScaleU is empty."""

    def __init__(self, spy):
        super().__init__()
        self.fusers = torch.nn.ModuleList([spy] * 16)
        self.scaleu = torch.nn.ModuleList()


@pytest.fixture(scope="module")
def env(tiny):
    mod = tiny.mod
    model = tiny.unet(3)
    g = mod("instdiff_model.grounding")
    grounding = g.Grounding(tokens=torch.zeros(1, 184, 768), null_tokens=torch.zeros(1, 184, 768),
                            regions=torch.zeros(1, 30, 8, 8, dtype=torch.bool),
                            present=torch.zeros(1, 30, dtype=torch.bool), drop="sd15")
    return types.SimpleNamespace(mod=mod, model=model, grounding=grounding)


class CountedSigmas(torch.Tensor):
    """The host's sigmas, counting their reads to Python (`.max()`: a device sync on a GPU)."""
    reads = 0

    def max(self, *args, **kwargs):
        CountedSigmas.reads += 1
        return super().max(*args, **kwargs)


def gate_run(env, steps, scheduler, full=0.8, sampler="euler", count_reads=False):
    """(per UNet call: were the fusers on, gate evaluations) of one sampling run, cfg 1 (one UNet call a step)."""
    import comfy.sample
    spy = FuserSpy()
    gate = env.mod("instdiff_model.gate").GateSchedule(env.mod("nodes.host_api").model_sampling_of(env.model),
                                                        full, 0.0)
    evaluations = []
    percent = gate.percent
    gate.percent = lambda sigma: evaluations.append(sigma) or percent(sigma)
    patched = env.model.clone()
    conditioning = env.mod("nodes.tokenizer").InstanceConditioning(env.grounding)
    patch = env.mod("nodes.patch").FuserPatch(SpyInstanceDiffusion(spy), conditioning, gate, False)
    patched.set_model_patch(patch, "middle_patch")
    on = []

    def unet(apply, args):
        before = len(spy.scales)
        if count_reads:
            options = args["c"]["transformer_options"]
            options["sigmas"] = options["sigmas"].as_subclass(CountedSigmas)
        out = apply(args["input"], args["timestep"], **args["c"])
        on.append(len(spy.scales) - before)
        return out

    patched.set_model_unet_function_wrapper(unet)
    cond = [[torch.randn(1, 77, 768, generator=torch.Generator().manual_seed(0)), {}]]
    latent = torch.zeros(1, 4, 8, 8)
    comfy.sample.sample(patched, torch.randn(latent.shape, generator=torch.Generator().manual_seed(1)), steps, 1.0,
                        sampler, scheduler, cond, cond, latent, disable_pbar=True, seed=1)
    assert set(on) <= {0, 16} and set(spy.scales) <= {1.0}  # all 16 fusers at full strength, or none
    return [n == 16 for n in on], len(evaluations)


def test_the_sigma_is_read_from_the_device_once_per_unet_call(env):
    CountedSigmas.reads = 0
    on, _ = gate_run(env, 10, "normal", full=1.0, count_reads=True)
    assert all(on) and CountedSigmas.reads == 10  # one read feeds the gate and the new-run check; not one per fuser


def test_official_step_count_with_the_normal_scheduler(env):
    official = int(0.8 * 50)  # official alpha_generator(50, [0.8, 0, 0.2]): [1] * int(0.8 * 50) + [0] * rest
    on, evaluations = gate_run(env, 50, "normal")
    assert on == [True] * official + [False] * (50 - official)
    assert evaluations == len(on)  # the gate reads the sigma once per UNet call, not once per fuser


def test_shipped_official_workflow_switches_the_fusers_off_after_its_grounding_full(env):
    """The official-settings workflow's own values (ddim on ddim_uniform, 50 steps, grounding_full 0.8): the fusers
    run for the first 40 UNet steps, as the official step fraction, then switch off."""
    wf = json.loads((Path(__file__).resolve().parents[1] / "workflows"
                     / "Official settings (start here) - InstanceDiffusion.json").read_text())
    (apply,) = [n for n in wf["nodes"] if n["type"] == "ApplyInstanceDiffusion"]
    (sampler,) = [n for n in wf["nodes"] if n["type"] == "InstanceDiffusionKSampler"]
    full, decay = apply["widgets_values"][:2]
    steps, sampler_name, scheduler = (sampler["widgets_values"][i] for i in (2, 4, 5))
    assert decay == 0.0
    on, _ = gate_run(env, steps, scheduler, full, sampler_name)
    official = int(0.8 * 50)
    assert on == [True] * official + [False] * (50 - official)


def test_karras_grounds_fewer_steps_as_documented(env):
    """karras crowds its steps at low noise: 19 of 30 steps are above 80% noise level (step fraction: 24)."""
    on, _ = gate_run(env, 30, "karras")
    assert on == [True] * 19 + [False] * 11
    assert "karras` 19 of 30 steps" in env.mod("instdiff_model.gate").GateSchedule.__doc__
