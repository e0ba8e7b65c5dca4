"""InstanceDiffusionModel: the instance tokenizer (position net), 16 fusers and ScaleU, with official key names."""
import torch
from torch import nn

from .blocks import FUSER_BLOCKS, SCALEU_CHANNELS, fuser_prefix
from .checkpoint import DEFAULT_WEIGHTS, POSITION_NET_PREFIX, read_weights, validate
from .fuser import GatedSelfAttentionDense
from .scaleu import ScaleU
from .position_net import InstanceTokenizer

MODEL_CHANNELS = 320


class InstanceDiffusionModel(nn.Module):
    """position_net -> 184 grounding tokens; fusers[i] for ComfyUI transformer_index i; scaleu(i, h, skip).

    `model_channels` is SD1.5's 320 for real weights; a smaller multiple of 32 builds the same structure at
    reduced width for the tiny test UNet.
    """

    def __init__(self, model_channels: int = MODEL_CHANNELS):
        super().__init__()
        self.model_channels = model_channels
        width = lambda c: c * model_channels // MODEL_CHANNELS  # noqa: E731
        self.position_net = InstanceTokenizer()
        self.fusers = nn.ModuleList(GatedSelfAttentionDense(width(c)) for _, c in FUSER_BLOCKS)
        self.scaleu = ScaleU(tuple(width(c) for c in SCALEU_CHANNELS))

    def set_precision(self, weights_dtype: torch.dtype, position_net_dtype: torch.dtype = torch.float32):
        """Store the fusers and ScaleU in `weights_dtype` (cast per call to the UNet's compute dtype when they run)
        and the position net in `position_net_dtype`; returns self."""
        self.fusers.to(weights_dtype)
        self.scaleu.to(weights_dtype)
        self.position_net.to(position_net_dtype)
        return self

    @staticmethod
    def official_key(name: str) -> str:
        """Our state-dict name -> the official UNet key (e.g. fusers.6.linear.bias -> middle_block.1...)."""
        part, rest = name.split(".", 1)
        if part == "position_net":
            return POSITION_NET_PREFIX + rest
        if part == "fusers":
            index, rest = rest.split(".", 1)
            return fuser_prefix(int(index)) + rest
        return rest  # scaleu.scaleu_b_i -> scaleu_b_i

    def official_spec(self) -> dict:
        """{official key: shape} this model expects."""
        return {self.official_key(k): tuple(v.shape) for k, v in self.state_dict().items()}

    def load_official(self, sd: dict, source: str = "state dict") -> None:
        """Strictly load {official key: tensor}; the tensors are adopted as parameters (assign), not copied."""
        validate(sd, self.official_spec(), source)
        ours = {k: sd[self.official_key(k)] for k in self.state_dict()}
        self.load_state_dict(ours, strict=True, assign=True)

    @classmethod
    def from_file(cls, paths, weights: str = DEFAULT_WEIGHTS, dtype=None) -> "InstanceDiffusionModel":
        """Load from the official .pth ('ema' = official inference default, or 'model'), our safetensors, or
        logtd's split files (a list); `dtype` casts while reading. Raises InstDiffError on bad files."""
        with torch.device("meta"):
            model = cls()
        model.load_official(read_weights(paths, weights=weights, dtype=dtype, spec=model.official_spec()), str(paths))
        return model.eval().requires_grad_(False)
