"""The numbers and names of the method, defined once: instance slots, grounding tokens, widths, drop configs."""
from enum import StrEnum

N_SLOTS = 30  # instance slots of the position net: its per-instance inputs are padded to N_SLOTS, one instance a slot
MAX_INSTANCES = N_SLOTS  # the most instances a layout may hold (the limit users are told): one a slot
N_SLOT_GROUPS = 4  # grounding token groups with one token per slot: box | point | scribble | polygon
N_SEG_TOKENS = 64  # tokens of the joint segmentation mask
N_GROUNDING = N_SLOTS * N_SLOT_GROUPS + N_SEG_TOKENS  # 184 = 30 + 30 + 30 + 30 + 64
TEXT_DIM = 768  # CLIP-L text width: phrase embeddings and grounding tokens
CONTEXT_DIM = TEXT_DIM  # cross-attention context width of the SD1.5 UNet
N_SCRIBBLE_POINTS = 20  # points per scribble input
N_POLYGON_POINTS = 256  # vertices per polygon input
SEG_SIZE = 512  # the official instance-mask resolution (segs are SEG_SIZE x SEG_SIZE)


class DropConfig(StrEnum):
    """The official test configs (test_*.yaml): which location formats the position net drops (DROP_CONFIGS)."""

    SD15 = "sd15"
    BOX = "box"
    POINT = "point"
    SCRIBBLE = "scribble"
