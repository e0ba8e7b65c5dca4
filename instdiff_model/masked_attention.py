"""Instance-masked attention: boolean masks keeping each visual token to its own instance's tokens.

Token layout of the fuser's self-attention: h*w visual tokens (row-major 'b (h w) c'), then 184 grounding
tokens [30 box | 30 point | 30 scribble | 30 polygon | 64 seg]; slot i of each of the first four groups
belongs to instance i. Rules (True = may attend):

* Regions -> tokens: a token belongs to instance i if at least half of its cell is inside region i
  (area pooling from the region resolution to h x w). An instance that would get no token that way (a
  small object at 8x8) takes every token its region touches instead, so it never disappears.
* A visual token inside one or more instances attends to every visual token inside any of those instances
  (the union of their regions, overlaps included) and to the four grounding tokens of each of them.
* A background visual token (inside no instance) attends to all background visual tokens and to no
  instance's grounding tokens.
* Unlocalised slots (padding, or a present instance whose region is empty, e.g. point-only) are not
  masked: every visual token may attend to their grounding tokens, as in the unmasked model.
* The 64 seg tokens come from the joint mask of all instances: every visual token may attend to them.
* Grounding-token rows attend to everything (their outputs are discarded; this keeps softmax finite).
* Every row has at least its own diagonal entry, so no row is fully masked. A batch element without any
  localised instance (e.g. the unconditional CFG pass) gets an all-True mask, i.e. plain attention.
"""
import torch
import torch.nn.functional as F

from .errors import InstDiffError

N_SLOTS = 30
N_SLOT_GROUPS = 4
N_SEG_TOKENS = 64
N_GROUNDING = N_SLOTS * N_SLOT_GROUPS + N_SEG_TOKENS


def box_regions(boxes: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(B,30,4) normalised x0,y0,x1,y1 -> (B,30,height,width) bool: pixels the box overlaps with positive area."""
    x0, y0, x1, y1 = boxes.float().clamp(0, 1).unbind(-1)
    cols = torch.arange(width, dtype=torch.float32, device=boxes.device)
    rows = torch.arange(height, dtype=torch.float32, device=boxes.device)
    in_x = (cols + 1 > x0[..., None] * width) & (cols < x1[..., None] * width)
    in_y = (rows + 1 > y0[..., None] * height) & (rows < y1[..., None] * height)
    return in_y[..., :, None] & in_x[..., None, :]


def region_tokens(regions: torch.Tensor, present: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """(B,30,Hr,Wr) regions (bool, or float binarised at 0.5) -> (B, h*w, 30) bool token membership."""
    if regions.ndim != 4 or regions.shape[:2] != present.shape or present.shape[1] != N_SLOTS:
        raise InstDiffError(
            f"instance regions must be (B,{N_SLOTS},H,W) with present (B,{N_SLOTS}); "
            f"got {tuple(regions.shape)} and {tuple(present.shape)}"
        )
    inside = (regions > 0.5 if regions.is_floating_point() else regions.bool()).float()
    by_area = F.adaptive_avg_pool2d(inside, (h, w)) >= 0.5
    touched = F.adaptive_max_pool2d(inside, (h, w)) > 0
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
