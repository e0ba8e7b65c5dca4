"""A shipped workflow end to end on hosts with a half-precision UNet (CPU): runs, grounds, stays finite."""
import pytest
import torch

from scripts.headless import HostServer, ui_to_api
from scripts.make_random_models import LORA_TINY
from test_workflows import latent, load, shipped, shrink
from tolerance import assert_rel_differs
from workflows_api import instancediffusion_off, on_tiny_models, save_latent_after


# The host stores the UNet in fp16 / bf16 (the start-up flag; the tiny test UNet in the host's loader dtype); on a CPU
# it computes in fp32 (manual cast), and the fusers follow that compute dtype. fp16 / bf16 compute and fp8 weights
# are covered in-process by tests/test_gpu_citizen.py. The fp16 host is the session's (shared with test_edit); bf16
# needs a server of its own (the UNet dtype is a start-up flag).
def boxes_on(host):
    prompt = on_tiny_models(shrink(ui_to_api(load(shipped("instancediffusion_boxes")), host.object_info)), LORA_TINY,
                            host_dtype=True)
    saver = save_latent_after(prompt)
    ours = latent(host, host.run(prompt), saver)
    off = latent(host, host.run(instancediffusion_off(prompt)), saver)
    assert torch.isfinite(ours).all()
    assert_rel_differs(ours, off, 1e-4, "InstanceDiffusion")  # 1000x fp32 rounding of the latents


def test_boxes_workflow_on_an_fp16_unet(fp16_host):
    boxes_on(fp16_host)


def test_boxes_workflow_on_a_bf16_unet(stand_ins):
    with HostServer(extra_args=["--bf16-unet"], test_nodes=True) as host:
        boxes_on(host)
