"""Shared pytest fixtures: the repo on sys.path and one host server per session."""
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


@pytest.fixture(scope="session")
def stand_ins():
    """The random stand-in files in the host's models folders, written once per session (a no-op when present)."""
    import subprocess
    subprocess.run([sys.executable, str(REPO / "scripts" / "make_random_models.py")], check=True,
                   stdout=subprocess.DEVNULL)


@pytest.fixture(scope="session")
def host(stand_ins):
    """A running host with this pack and the test-only nodes (tests/host_nodes/), the random stand-in files in its models folders."""
    from scripts.headless import HostServer
    with HostServer(test_nodes=True) as server:
        yield server


@pytest.fixture(scope="session")
def fp16_host(stand_ins):
    """A second host whose checkpoint loader stores UNets in fp16 (--fp16-unet), with the test-only nodes."""
    from scripts.headless import HostServer
    with HostServer(extra_args=["--fp16-unet"], test_nodes=True) as server:
        yield server


@pytest.fixture(scope="session")
def formula_tokenizer():
    """The full-size instance tokenizer filled by the reference weight formula (salt ""), built once per session (the
    formula costs seconds for its 160M values); eval mode, grad off; tests only run it, never change it."""
    from tools.formula import fill_module
    from instdiff_model.position_net import InstanceTokenizer
    tok = InstanceTokenizer().eval().requires_grad_(False)
    fill_module(tok, "", prefix="position_net.")
    return tok


@pytest.fixture(scope="session")
def pack():
    """This pack imported in-process on the host's modules (CPU, pytorch attention, grad off)."""
    from scripts.hostenv import import_pack
    return import_pack()


@pytest.fixture(scope="session")
def tiny(pack, formula_tokenizer):
    """The in-process pack's modules by name, and builders of the tiny SD1.5 UNet (32 channels), of the formula
    InstanceDiffusion weights at its width (the position net: a copy of `formula_tokenizer`, the same at any width,
    so its 160M formula values are computed once a session, not once a module), of a two-box layout and of a test's
    set-up from them (`env`); each call builds new objects: tests never share mutable models."""
    import importlib
    import types

    import torch
    random_models = importlib.import_module("scripts.random_models")

    def mod(name):
        return importlib.import_module(f"{pack.__name__}.{name}")

    def unet(seed):
        return random_models.random_sd15_model(seed, 32)

    def instdiff(salt, width=32):
        """Fusers and ScaleU from the formula with `salt`; the position net's values are the salt-"" formula's (so
        with salt "" this is exactly tools.formula.formula_model(InstanceDiffusionModel, "", model_channels=width))."""
        with torch.device("meta"):
            model = mod("instdiff_model.model").InstanceDiffusionModel(width)
        net = formula_tokenizer.state_dict()
        from tools.formula import formula_tensor
        model.load_official({model.official_key(k): net[k[len("position_net."):]].clone()
                             if k.startswith("position_net.") else formula_tensor(model.official_key(k), v.shape, salt)
                             for k, v in model.state_dict().items()})
        return model.eval().requires_grad_(False)

    def layout(a, b):
        """128x128, caption "c": "a cube" at box a and "a ball" at box b (x, y, w, h pixels)."""
        L = mod("instdiff_model.layout")
        return L.Layout(width=128, height=128, caption="c", instances=[
            L.Instance(caption="a cube", box=a), L.Instance(caption="a ball", box=b)])

    def env(unet_seed, salt, layout=None, grounding=False):
        """mod, the tiny UNet `model` (unet_seed), the formula `instdiff` (salt) and `layout`; `ground(tokenizer)`
        builds the layout's sd15 grounding (sample seed 0) from phrase embeddings seeded 1 by tokenizer (default: the
        weights' position net); with grounding=True, `grounding` is ground() (else None); `apply(grounding, ...)` is
        the Apply node's MODEL for a grounding (and caption conds, for MIS)."""
        model, weights = unet(unet_seed), instdiff(salt)

        def apply(g, masked=False, full=1.0, captions=(), model=model):
            conditioning = mod("nodes.tokenizer").InstanceConditioning(g, tuple(captions))
            node = mod("nodes.apply").ApplyInstanceDiffusion()
            return node.apply(model, weights, conditioning, full, 0.0, True, masked)[0]

        def ground(tokenizer=None):
            emb = torch.randn(len(layout.instances), 768, generator=torch.Generator().manual_seed(1))
            net = weights.position_net if tokenizer is None else tokenizer
            return mod("instdiff_model.grounding").build_grounding(net, [layout], [emb], "sd15", 0)

        return types.SimpleNamespace(mod=mod, model=model, instdiff=weights, layout=layout, ground=ground, apply=apply,
                                     grounding=ground() if grounding else None)

    return types.SimpleNamespace(mod=mod, unet=unet, instdiff=instdiff, layout=layout, env=env)
