"""A shipped workflow end to end on hosts with a half-precision UNet (CPU): runs, grounds, stays finite."""
import pytest
import torch

from scripts.headless import HostServer, ui_to_api
from test_workflows import latent, load, shipped, shrink
from tolerance import assert_rel_differs
from workflows_api import instancediffusion_off, save_latent_after


# The host loads the UNet's weights in fp16 / bf16; on a CPU it computes in fp32 (manual cast), and the fusers follow
# that compute dtype. fp16 / bf16 compute and fp8 weights are covered in-process by tests/test_gpu_citizen.py.
# Slow by nature (a server of its own per flag: the UNet dtype is a start-up flag of the host, the session's shared
# server cannot take it).
@pytest.mark.parametrize("flags", [["--fp16-unet"], ["--bf16-unet"]], ids=["fp16", "bf16"])
def test_boxes_workflow_on_a_half_precision_unet(stand_ins, flags):
    path = shipped("instancediffusion_boxes")
    with HostServer(extra_args=flags) as host:
        prompt = shrink(ui_to_api(load(path), host.object_info))
        saver = save_latent_after(prompt)
        ours = latent(host, host.run(prompt), saver)
        off = latent(host, host.run(instancediffusion_off(prompt)), saver)
    assert torch.isfinite(ours).all()
    assert_rel_differs(ours, off, 1e-4, "InstanceDiffusion")  # 1000x fp32 rounding of the latents
