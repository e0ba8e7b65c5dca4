"""A box's region as a pixel raster: what masked_attention.box_coverage pools to the region grid (tests only)."""
import torch

from instdiff_model.masked_attention import box_axes


def box_regions(boxes: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(B,30,4) normalised x0,y0,x1,y1 -> (B,30,height,width) bool: box_axes' rows x columns of each box (in
    pixels of the height x width image)."""
    in_y, in_x = box_axes(boxes * torch.tensor([width, height, width, height]), height, width)
    return in_y[..., :, None] & in_x[..., None, :]
