"""ConvNeXt-T feature extractor (no head) with the official parameter names, used on instance masks."""
import torch
import torch.nn.functional as F
from torch import nn

DEPTHS = (3, 3, 9, 3)
DIMS = (96, 192, 384, 768)
EPS = 1e-6


class ChannelsFirstLayerNorm(nn.Module):
    """LayerNorm over dim 1 of (B, C, H, W), computed as in ConvNeXt (biased variance, eps inside sqrt)."""

    def __init__(self, dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(1, keepdim=True)
        var = (x - mean).pow(2).mean(1, keepdim=True)
        x = (x - mean) / torch.sqrt(var + EPS)
        return self.weight[:, None, None] * x + self.bias[:, None, None]


class Block(nn.Module):
    """Depthwise 7x7 conv, channels-last LayerNorm, 4x MLP with exact GELU, layer scale `gamma`, residual."""

    def __init__(self, dim: int):
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, kernel_size=7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=EPS)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.pwconv2 = nn.Linear(4 * dim, dim)
        self.gamma = nn.Parameter(torch.full((dim,), 1e-6))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.dwconv(x).permute(0, 2, 3, 1)
        y = self.pwconv2(F.gelu(self.pwconv1(self.norm(y))))
        return x + (self.gamma * y).permute(0, 3, 1, 2)


class ConvNeXtTiny(nn.Module):
    """Stem 4x4/4 + LN, then 4 stages [3,3,9,3] x [96,192,384,768] with LN + 2x2/2 conv between; (B,3,H,W) -> (B,768,H/32,W/32)."""

    def __init__(self, in_chans: int = 3):
        super().__init__()
        self.downsample_layers = nn.ModuleList(
            [nn.Sequential(nn.Conv2d(in_chans, DIMS[0], kernel_size=4, stride=4), ChannelsFirstLayerNorm(DIMS[0]))]
        )
        for i in range(3):
            self.downsample_layers.append(
                nn.Sequential(ChannelsFirstLayerNorm(DIMS[i]), nn.Conv2d(DIMS[i], DIMS[i + 1], kernel_size=2, stride=2))
            )
        self.stages = nn.ModuleList([nn.Sequential(*[Block(DIMS[i]) for _ in range(DEPTHS[i])]) for i in range(4)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for down, stage in zip(self.downsample_layers, self.stages):
            x = stage(down(x))
        return x
