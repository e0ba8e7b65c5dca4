"""MIS memory: passes sized from free memory on GPUs (max_batch 0), and no device caches left after a run or an interrupt."""
import types

import pytest
import torch


@pytest.fixture(scope="module")
def env(tiny):
    env = tiny.env(5, "mis-memory", tiny.layout((8, 10, 60, 70), (70, 60, 50, 60)))
    grounding = env.ground(env.mod("nodes.tokenizer").load_position_net(env.instdiff))
    captions = [torch.randn(1, 77, 768, generator=torch.Generator().manual_seed(i)) for i in (2, 3)]
    env.patched = env.apply(grounding, masked=True, captions=captions)
    return env


def run_mis(env, monkeypatch, interrupt_at=None, max_batch=0):
    """The MIS node in-process on the tiny UNet; returns every FuserPatch its passes used."""
    import comfy.model_management as mm
    sampler = env.mod("nodes.sampler")
    used = [sampler.find_fuser_patch(env.patched)]
    real_with_grounding = sampler.with_grounding

    def spy(model, grounding):
        clone = real_with_grounding(model, grounding)
        used.append(sampler.find_fuser_patch(clone))
        return clone

    def progress(model, total):
        def callback(step, x0, x, total_steps):
            if step == interrupt_at:
                raise mm.InterruptProcessingException()
        return callback

    monkeypatch.setattr(sampler, "with_grounding", spy)
    monkeypatch.setattr(sampler.host_api, "progress_callback", progress)
    g = torch.Generator().manual_seed(0)
    positive, negative = [[torch.randn(1, 77, 768, generator=g), {}]], [[torch.zeros(1, 77, 768), {}]]
    latent = {"samples": torch.zeros(1, 4, 16, 16)}
    out = sampler.InstanceDiffusionKSampler().sample(env.patched, 0, 4, 5.0, "euler", "normal", positive, negative,
                                                    latent, 1.0, 0.5, max_batch)
    return used, out


def test_finished_and_interrupted_mis_runs_leave_no_device_caches(env, monkeypatch):
    import comfy.model_management as mm
    used, _ = run_mis(env, monkeypatch, max_batch=1)
    assert len(used) == 1 + 3  # the patched model, then one pass per trajectory (max_batch 1)
    assert all(not p.cache.entries for p in used)
    with pytest.raises(mm.InterruptProcessingException):
        run_mis(env, monkeypatch, interrupt_at=1)
    assert all(not p.cache.entries for p in used)
    mm.unload_all_models()


def test_max_batch_zero_fits_the_passes_in_free_memory_on_gpus(env, monkeypatch):
    sampler, mis = env.mod("nodes.sampler"), env.mod("instdiff_model.mis")
    assert mis.latents_per_pass(10_000, 1_000, 2) == 10 and mis.latents_per_pass(10_000, 1_000, 3) == 9
    assert mis.latents_per_pass(100, 1_000, 2) == 2  # at least one whole trajectory per pass
    latent = torch.zeros(2, 4, 64, 48)
    unet_bytes = lambda shape: 1000 * shape[0] * shape[2] * shape[3]  # noqa: E731
    fake = types.SimpleNamespace(load_device=torch.device("cpu"), memory_required=unet_bytes,
                                 model=types.SimpleNamespace(manual_cast_dtype=None, get_dtype=lambda: torch.float16))
    assert sampler.auto_max_batch(fake, latent, masked=True) == 0  # CPU: all trajectories in one pass
    fake.load_device = torch.device("cuda")
    per_latent = unet_bytes([2, 4, 64, 48]) + mis.fuser_bytes_per_latent(64, 48, 2, True)
    monkeypatch.setattr(sampler.host_api, "free_memory_for", lambda model: 7 * per_latent + 1)
    assert sampler.auto_max_batch(fake, latent, masked=True) == 6
    chunks = mis.trajectory_chunks(11, 2, sampler.auto_max_batch(fake, latent, masked=True))
    assert [len(c) for c in chunks] == [3, 3, 3, 2]
    monkeypatch.setattr(sampler, "auto_max_batch", lambda model, latent, masked: 1)
    assert len(run_mis(env, monkeypatch, max_batch=0)[0]) == 1 + 3  # the node sizes its passes with it
    fake.model.manual_cast_dtype = torch.float32  # fp8 weights computing in fp32: twice the bytes per latent
    assert sampler.auto_max_batch(fake, latent, masked=True) < 6
