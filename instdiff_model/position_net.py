"""Instance tokenizer (the official UniFusion position net): per-instance text + location -> 184 grounding tokens."""
# Phrase embeddings (`positive_embeddings`, 768-d per instance) must be the CLIP ViT-L/14 text model's
# *pooled* output BEFORE the text projection: the final-LayerNorm hidden state at the EOS token
# (HF `CLIPModel.text_model(...).pooler_output`, not `get_text_features`), one caption per instance.
#
# Eval-mode only: the official forward also draws four `torch.rand(1)` from the global torch RNG for its
# training-time dropout and then ignores them in eval; we skip those draws, so the global RNG is untouched.
import torch
import torch.nn.functional as F
from torch import nn

from .constants import N_POLYGON_POINTS, N_SCRIBBLE_POINTS, N_SEG_TOKENS, N_SLOTS, SEG_SIZE, TEXT_DIM, DropConfig
from .convnext import ConvNeXtTiny
from .errors import InstDiffError
from .fourier import fourier_embed
from .locations import locations_of

MID_DIM = 3072
SEG_FEATURE_DIM = 3072

# config -> (drop boxes, drop points, drop scribbles, drop masks = polygons + segs); the official test_*.yaml flags
DROP_CONFIGS = {
    DropConfig.SD15: (False, False, True, False),
    DropConfig.BOX: (False, False, True, True),
    DropConfig.POINT: (True, False, True, True),
    DropConfig.SCRIBBLE: (False, False, False, False),
}


def choose_drop_config(layout) -> DropConfig:
    """Drop config matching the formats present in `layout` (callers may override it): of the configs the
    instances' location kinds need (each kind's drop_config: the config that keeps it and drops the most), the
    one dropping the fewest formats (the configs' kept formats nest, so it keeps every kind present).

    scribbles anywhere -> "scribble" (the only config that keeps scribbles); masks/polygons -> "sd15"
    (keeps masks, the official default); boxes (with or without points) -> "box" (what the official README
    runs its box demos with); points only -> "point" (drops boxes, which would be all zero).
    """
    needed = {kind.drop_config for inst in layout.instances for kind, _ in locations_of(inst)}
    return min(needed, key=lambda config: (sum(DROP_CONFIGS[config]), config), default=DropConfig.POINT)


def _mlp(in_dim: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_dim, MID_DIM), nn.SiLU(), nn.Linear(MID_DIM, MID_DIM), nn.SiLU(), nn.Linear(MID_DIM, TEXT_DIM))


class InstanceTokenizer(nn.Module):
    """UniFusion: box/point/scribble/polygon tokens (30 each, text-conditioned) + 64 mask tokens from ConvNeXt-T."""

    def __init__(self):
        super().__init__()
        box_dim, point_dim = 32 * 4, 32 * 2
        scribble_dim, polygon_dim = 32 * 2 * N_SCRIBBLE_POINTS, 32 * 2 * N_POLYGON_POINTS
        self.in_conv = nn.Conv2d(N_SLOTS, 3, 3, 1, 1)
        self.convnext_tiny_backbone = ConvNeXtTiny()
        self.pos_embedding = nn.Parameter(torch.zeros(1, N_SEG_TOKENS, SEG_FEATURE_DIM))
        self.linears_list = nn.ModuleList(
            [_mlp(TEXT_DIM + d) for d in (box_dim, point_dim, scribble_dim, polygon_dim)] + [_mlp(SEG_FEATURE_DIM)]
        )
        self.null_positive_feature = nn.Parameter(torch.zeros(TEXT_DIM))
        self.null_position_feature = nn.Parameter(torch.zeros(box_dim))
        self.null_point_feature = nn.Parameter(torch.zeros(point_dim))
        self.null_scribble_feature = nn.Parameter(torch.zeros(scribble_dim))
        self.null_polygon_feature = nn.Parameter(torch.zeros(polygon_dim))
        self.null_seg_feature = nn.Parameter(torch.zeros(SEG_FEATURE_DIM))

    def _seg_tokens(self, segs: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        """(B,30,h,w) masks -> (B,64,3072) tokens: ConvNeXt features where present, null feature elsewhere, + pos."""
        b = segs.shape[0]
        tokens = self.null_seg_feature.view(1, 1, -1).expand(b, N_SEG_TOKENS, -1)
        if bool(present.any()):
            idx = present.nonzero()[:, 0]
            x = F.interpolate(segs[idx], SEG_SIZE, mode="nearest")
            feat = self.convnext_tiny_backbone(self.in_conv(x))
            # raw reshape (B,768,8,8) -> (B,3072,64), as the official code does, then tokens first
            feat = feat.reshape(len(idx), -1, N_SEG_TOKENS).permute(0, 2, 1)
            tokens = tokens.clone()
            tokens[idx] = feat
        return tokens + self.pos_embedding

    def forward(self, boxes, masks, positive_embeddings, scribbles, polygons, segs, points, drop=DropConfig.SD15):
        """Official positional inputs (B,30,...) -> (objs (B,184,768), drop_box_mask).

        Token order: 30 box, 30 point, 30 scribble, 30 polygon, 64 seg tokens. `drop` is a DropConfig (or its value).
        `points` None -> box centres. `segs` may have any spatial size (nearest-resized to 512x512).
        """
        if drop not in DROP_CONFIGS:
            raise InstDiffError(f"unknown drop config {drop!r}; use one of {sorted(map(str, DropConfig))}")
        drop_box, drop_point, drop_scribble, drop_masks = DROP_CONFIGS[drop]
        if drop_box and drop_point and drop_scribble and drop_masks:
            drop_box = False
        dtype = self.null_positive_feature.dtype
        boxes, masks, positive_embeddings, scribbles, polygons, segs = (
            t.to(dtype) for t in (boxes, masks, positive_embeddings, scribbles, polygons, segs)
        )
        if points is None:
            points = (boxes[:, :, :2] + boxes[:, :, 2:]) / 2.0
        points = points.to(dtype)
        m = masks.unsqueeze(-1)
        zero = torch.zeros_like(m)

        def masked(emb, keep, null):
            return emb * keep + (1 - keep) * null.view(1, 1, -1)

        text = masked(positive_embeddings, m, self.null_positive_feature)
        box_keep = zero if drop_box else m
        point_keep = zero if drop_point else m
        scribble_keep = zero if drop_scribble else ((scribbles.sum(-1, keepdim=True) + m) > 0).to(dtype)
        polygon_keep = zero if drop_masks else ((polygons.sum(-1, keepdim=True) + m) > 0).to(dtype)
        layout = [
            masked(fourier_embed(boxes), box_keep, self.null_position_feature),
            masked(fourier_embed(points), point_keep, self.null_point_feature),
            masked(fourier_embed(scribbles), scribble_keep, self.null_scribble_feature),
            masked(fourier_embed(polygons), polygon_keep, self.null_polygon_feature),
        ]
        objs = [mlp(torch.cat([text, emb], dim=-1)) for mlp, emb in zip(self.linears_list, layout)]
        seg_present = torch.zeros(segs.shape[0], dtype=torch.bool, device=segs.device)
        if not drop_masks:
            seg_present = segs.sum(dim=(1, 2, 3)) > 0
        objs.append(self.linears_list[4](self._seg_tokens(segs, seg_present)))
        return torch.cat(objs, dim=1), bool(drop_box and drop_masks)
