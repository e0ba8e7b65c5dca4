"""The 16 transformer blocks that carry a fuser and the 12 ScaleU output blocks of the SD1.5 UNet."""
from .constants import CONTEXT_DIM

# Official UNet module names in ComfyUI `transformer_index` order, with their channel widths.
FUSER_BLOCKS = (
    ("input_blocks.1.1", 320),
    ("input_blocks.2.1", 320),
    ("input_blocks.4.1", 640),
    ("input_blocks.5.1", 640),
    ("input_blocks.7.1", 1280),
    ("input_blocks.8.1", 1280),
    ("middle_block.1", 1280),
    ("output_blocks.3.1", 1280),
    ("output_blocks.4.1", 1280),
    ("output_blocks.5.1", 1280),
    ("output_blocks.6.1", 640),
    ("output_blocks.7.1", 640),
    ("output_blocks.8.1", 640),
    ("output_blocks.9.1", 320),
    ("output_blocks.10.1", 320),
    ("output_blocks.11.1", 320),
)

# Channels of `h` (hence of scaleu_b_i) entering output block i = 0..11.
SCALEU_CHANNELS = (1280,) * 7 + (640,) * 3 + (320,) * 2


def fuser_prefix(index: int) -> str:
    """Official key prefix of the fuser in transformer block `index` (0..15)."""
    return FUSER_BLOCKS[index][0] + ".transformer_blocks.0.fuser."


def fuser_shapes(channels: int) -> dict:
    """{name: shape} of one fuser's parameters (names relative to the fuser prefix)."""
    c, ctx = channels, CONTEXT_DIM
    return {
        "alpha_attn": (),
        "alpha_dense": (),
        "linear.weight": (c, ctx),
        "linear.bias": (c,),
        "attn.to_q.weight": (c, c),
        "attn.to_k.weight": (c, c),
        "attn.to_v.weight": (c, c),
        "attn.to_out.0.weight": (c, c),
        "attn.to_out.0.bias": (c,),
        "ff.net.0.proj.weight": (8 * c, c),
        "ff.net.0.proj.bias": (8 * c,),
        "ff.net.2.weight": (c, 4 * c),
        "ff.net.2.bias": (c,),
        "norm1.weight": (c,),
        "norm1.bias": (c,),
        "norm2.weight": (c,),
        "norm2.bias": (c,),
    }


def fuser_and_scaleu_spec() -> dict:
    """{official key: shape} of the 272 fuser and 24 ScaleU parameters."""
    spec = {}
    for i in range(12):
        spec[f"scaleu_b_{i}"] = (SCALEU_CHANNELS[i],)
        spec[f"scaleu_s_{i}"] = (1,)
    for index, (_, channels) in enumerate(FUSER_BLOCKS):
        for name, shape in fuser_shapes(channels).items():
            spec[fuser_prefix(index) + name] = shape
    return spec
