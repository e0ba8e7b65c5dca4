"""An instance tokenizer strictly loaded from official position-net keys (prefixed or not), for tests."""
from instdiff_model.checkpoint import POSITION_NET_PREFIX, validate


def load_position_net(net, sd: dict) -> None:
    """Load official position-net weights into `net`; keys with or without the `position_net.` prefix. A
    whole-UNet state dict is accepted too: when any key has the prefix, only prefixed keys are used. Raises
    InstDiffError listing missing, unexpected and wrong-shape keys (checkpoint.validate)."""
    if any(k.startswith(POSITION_NET_PREFIX) for k in sd):
        sd = {k[len(POSITION_NET_PREFIX):]: v for k, v in sd.items() if k.startswith(POSITION_NET_PREFIX)}
    validate(sd, {k: tuple(v.shape) for k, v in net.state_dict().items()}, "position-net state dict")
    net.load_state_dict(sd, strict=True)
