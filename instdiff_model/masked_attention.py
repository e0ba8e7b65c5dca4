"""Instance-masked attention: boolean masks keeping each visual token to its own instance's tokens."""
# Token layout of the fuser's self-attention: h*w visual tokens (row-major 'b (h w) c'), then 184 grounding
# tokens [30 box | 30 point | 30 scribble | 30 polygon | 64 seg]; slot i of each of the first four groups
# belongs to instance i. Rules (True = may attend):
#
# * Regions -> tokens: a token belongs to instance i if at least half of its cell is inside region i
#   (area pooling from the region grid to h x w); an instance that would get no token that way (a small object at
#   8x8) takes every token its region touches instead (coverage > 0), so it never disappears.
# * Region grid: regions are kept as area coverage (the fraction of each cell inside the region, float16) of the
#   layout's latent grid: ceil(H/8) x ceil(W/8) cells, each the adaptive-pooling window of the image's pixels (8x8
#   pixels when the sides are multiples of 8; else about 8, spanning the image as the latent does). Bool pixel
#   rasters are accepted too (coverage 0 or 1). Tokens are pooled from the cells by adaptive pooling. Where cells
#   nest evenly in tokens (sides multiples of 8 and the token grid dividing the region grid: every SD1.5 block when
#   the sides are multiples of 64 and the latent is the layout's size / 8) this equals pooling the pixels. Otherwise
#   a token pools every cell its pixels fall in, weighted equally, so its membership may differ from pooling the
#   pixels only where those cells are partly inside the region (its border); a latent larger than the layout's /8
#   size sees each region cell as a block of tokens.
# * A visual token inside one or more instances attends to every visual token inside any of those instances
#   (the union of their regions, overlaps included) and to the four grounding tokens of each of them.
# * A background visual token (inside no instance) attends to all background visual tokens and to no
#   instance's grounding tokens.
# * Unlocalised slots (padding, or a present instance whose region is empty, e.g. point-only) are not
#   masked: every visual token may attend to their grounding tokens, as in the unmasked model.
# * The 64 seg tokens come from the joint mask of all instances: every visual token may attend to them.
# * Grounding-token rows attend to everything (their outputs are discarded; this keeps softmax finite).
# * Every row has at least its own diagonal entry, so no row is fully masked. A batch element without any
#   localised instance (e.g. the unconditional CFG pass) gets an all-True mask, i.e. plain attention.
import numpy as np
import torch
import torch.nn.functional as F

from .constants import N_GROUNDING, N_SLOT_GROUPS, N_SLOTS
from .errors import InstDiffError

REGION_CELL = 8  # pixels per side of a region cell: the VAE's downscale, so the region grid is the latent grid


def box_axes(boxes: torch.Tensor, height: int, width: int) -> tuple:
    """(B,30,4) x0,y0,x1,y1 in pixels -> per box, (B,30,height) bool rows and (B,30,width) bool columns of a
    height x width image that it reaches into (k < x1 and k + 1 > x0; a box thinner than a pixel keeps the one it
    lies in): the pixels of its region are those rows x those columns."""
    x0, y0, x1, y1 = boxes.float().unbind(-1)
    x0, x1, y0, y1 = x0.clamp(0, width), x1.clamp(0, width), y0.clamp(0, height), y1.clamp(0, height)
    cols = torch.arange(width, dtype=torch.float32, device=boxes.device)
    rows = torch.arange(height, dtype=torch.float32, device=boxes.device)
    in_x = (cols + 1 > x0[..., None]) & (cols < x1[..., None])
    in_y = (rows + 1 > y0[..., None]) & (rows < y1[..., None])
    return in_y, in_x


def region_grid(height: int, width: int) -> tuple:
    """(rows, cols) of the region grid of a height x width image: ceil(side / REGION_CELL) cells per side."""
    return -(-height // REGION_CELL), -(-width // REGION_CELL)


def _pool_last(x: torch.Tensor, size: int) -> torch.Tensor:
    """Adaptive average pooling of the last dimension of x (float) to `size`."""
    return F.adaptive_avg_pool1d(x.reshape(-1, 1, x.shape[-1]), size).reshape(*x.shape[:-1], size)


def box_coverage(boxes: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(B,30,4) pixel boxes -> (B,30,rows,cols) float16 area coverage of the region grid by each box's pixels
    (box_axes' rows x columns): a cell's fraction is the fraction of its pixel rows the box overlaps times that of
    its pixel columns, so no pixel raster is built."""
    in_y, in_x = box_axes(boxes, height, width)
    rows, cols = region_grid(height, width)
    return (_pool_last(in_y.float(), rows)[..., :, None] * _pool_last(in_x.float(), cols)[..., None, :]).half()


def raster_coverage(raster: np.ndarray, strip: int = 1024) -> torch.Tensor:
    """(H,W) bool pixel raster -> (rows,cols) float16 area coverage of the region grid; pooled `strip` rows at a time
    (columns first, then rows: the same windows as one 2-D adaptive pooling), never a float copy of the whole raster."""
    pixels = torch.from_numpy(np.asarray(raster, dtype=bool))
    rows, cols = region_grid(*pixels.shape)
    by_cols = torch.cat([_pool_last(pixels[i:i + strip].float(), cols) for i in range(0, len(pixels), strip)])
    return _pool_last(by_cols.T, rows).T.half()


def region_tokens(regions: torch.Tensor, present: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """(B,30,Hr,Wr) regions (float area coverage in [0, 1] per cell, or bool) -> (B, h*w, 30) bool membership."""
    if regions.ndim != 4 or regions.shape[:2] != present.shape or present.shape[1] != N_SLOTS:
        raise InstDiffError(
            f"instance regions must be (B,{N_SLOTS},H,W) with present (B,{N_SLOTS}); "
            f"got {tuple(regions.shape)} and {tuple(present.shape)}"
        )
    coverage = regions.float()
    by_area = F.adaptive_avg_pool2d(coverage, (h, w)) >= 0.5
    touched = F.adaptive_max_pool2d(coverage, (h, w)) > 0
    vanished = ~by_area.flatten(2).any(-1)
    member = torch.where(vanished[..., None, None], touched, by_area) & present.bool()[..., None, None]
    return member.flatten(2).transpose(1, 2)


def instance_attention_mask(regions: torch.Tensor, present: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Bool mask (B, h*w+184, h*w+184) for GatedSelfAttentionDense(attn_mask=...); see the module rules."""
    member = region_tokens(regions, present, h, w)
    batch, n_visual = member.shape[:2]
    as_float = member.float()
    share_instance = torch.bmm(as_float, as_float.transpose(1, 2)) > 0
    background = ~member.any(-1)
    visual = share_instance | (background[:, :, None] & background[:, None, :])
    unlocalised = ~member.any(1)
    slot_columns = member | unlocalised[:, None, :]
    size = n_visual + N_GROUNDING
    mask = torch.ones(batch, size, size, dtype=torch.bool, device=member.device)
    mask[:, :n_visual, :n_visual] = visual
    mask[:, :n_visual, n_visual:n_visual + N_SLOTS * N_SLOT_GROUPS] = slot_columns.repeat(1, 1, N_SLOT_GROUPS)
    return mask
