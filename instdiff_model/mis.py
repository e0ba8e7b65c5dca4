"""Multi-instance sampler (MIS) helpers: trajectory batches (full + one per instance), their conditioning, the average."""
import math

import torch

from .errors import InstDiffError


def mis_steps(steps: int, mis: float) -> int:
    """Number of leading steps run as separate trajectories (official: int(steps * mis))."""
    if not 0.0 <= mis <= 1.0:
        raise InstDiffError(f"mis must be a fraction of the steps in [0, 1], got {mis}")
    return int(steps * mis)


def trajectory_chunks(trajectories: int, per: int, max_batch: int) -> list:
    """Split trajectory indices so each UNet pass holds at most `max_batch` latents (0 = no limit)."""
    size = trajectories if max_batch <= 0 else max(1, max_batch // per)
    return [list(range(i, min(i + size, trajectories))) for i in range(0, trajectories, size)]


def stack_text_conds(conds: list, per: int) -> torch.Tensor:
    """Cross-attention conds (1, L_t, C) -> (T*per, L, C), row t*per+b = trajectory t.

    Lengths differ by whole 77-token chunks; each is repeated to the least common multiple, which leaves
    attention unchanged (duplicated keys and values keep the softmax weights' proportions), as the host does
    when it batches conds of different lengths.
    """
    length = math.lcm(*[c.shape[1] for c in conds])
    rows = [c[:1].repeat(1, length // c.shape[1], 1).expand(per, -1, -1) for c in conds]
    return torch.cat(rows)


def repeat_trajectories(x: torch.Tensor, trajectories: int) -> torch.Tensor:
    """(B, ...) -> (T*B, ...): every trajectory starts from the same latent / noise."""
    return torch.cat([x] * trajectories)


def average_trajectories(x: torch.Tensor, trajectories: int) -> torch.Tensor:
    """(T*B, ...) -> (B, ...): the plain mean over trajectories, per latent."""
    return x.reshape(trajectories, -1, *x.shape[1:]).mean(0)
