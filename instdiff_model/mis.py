"""Multi-instance sampler (MIS): trajectories (full + one per instance), their grounding, text, noise, memory; the average."""
import dataclasses
import math

import torch

from .errors import InstDiffError
from .grounding import Grounding
from .constants import N_GROUNDING


def mis_steps(steps: int, mis: float) -> int:
    """Number of leading steps run as separate trajectories (official: int(steps * mis))."""
    if not 0.0 <= mis <= 1.0:
        raise InstDiffError(f"mis must be a fraction of the steps in [0, 1], got {mis}")
    return int(steps * mis)


def trajectory_chunks(trajectories: int, per: int, max_batch: int) -> list:
    """Split trajectory indices so each UNet pass holds at most `max_batch` latents (0 = no limit)."""
    size = trajectories if max_batch <= 0 else max(1, max_batch // per)
    return [list(range(i, min(i + size, trajectories))) for i in range(0, trajectories, size)]


def latents_per_pass(free_bytes: int, bytes_per_latent: int, per: int) -> int:
    """`max_batch` for trajectory_chunks from free memory: the whole trajectories (`per` latents each) that fit, at
    least one."""
    return max(1, int(free_bytes) // max(1, int(bytes_per_latent)) // per) * per


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


class SharedStepNoise:
    """The per-step noise of one MIS run, drawn per latent (B, ...) from the host's `source(sigma, sigma_next)`.

    Every trajectory of a latent sees the same noise and differs only by its conditioning, so averaging the
    trajectories keeps the noise level of ancestral and SDE samplers (the official PLMS sampler draws none). The
    first chunk of trajectories draws; later chunks replay those draws; the merged latents then continue the
    same source, as one uninterrupted run of the host's sampler would.
    """

    def __init__(self, source):
        self.source = source
        self.draws = []

    def for_trajectories(self, trajectories: int):
        """noise_sampler(sigma, sigma_next) for one sampler call on `trajectories` trajectories per latent."""
        calls = iter(range(1 << 62))

        def noise(sigma, sigma_next):
            i = next(calls)
            if i == len(self.draws):
                self.draws.append(self.source(sigma, sigma_next))
            return repeat_trajectories(self.draws[i], trajectories)

        return noise


def single_instance_regions(grounding: Grounding, frame: int, index: int) -> tuple:
    """(regions, present) of instance `index` of `frame` alone in slot 0, sliced from the full grounding."""
    regions = torch.zeros_like(grounding.regions[frame])
    present = torch.zeros_like(grounding.present[frame])
    regions[0], present[0] = grounding.regions[frame, index], grounding.present[frame, index]
    return regions, present


def instance_count(grounding: Grounding) -> int:
    """The number n of instances of the first layout frame (MIS runs n + 1 trajectories)."""
    return len(grounding.instance_tokens[0]) if grounding.instance_tokens else 0


def mis_grounding(grounding: Grounding, per: int) -> Grounding:
    """Grounding for T = n+1 trajectories x `per` latents: row t*per+b is trajectory t of latent b, sliced from the
    tokenizer's output (no tokenizer run).

    Trajectory 0 is the full layout; trajectory i >= 1 is instance i-1 alone in slot 0: its single-instance tokens
    (from the full layout's preprocessed inputs, so the same scribble / polygon points) and its region.
    """
    counts = {len(t) for t in grounding.instance_tokens}
    if len(counts) != 1:
        raise InstDiffError(f"MIS needs the same instances in every layout frame, got counts {sorted(counts)}")
    n = counts.pop()
    frames = grounding.frames_for(per)
    alone = torch.stack(grounding.instance_tokens)  # (F, n, 184, 768)
    single = [single_instance_regions(grounding, int(f), i) for i in range(n) for f in frames]
    return dataclasses.replace(
        grounding,
        tokens=torch.cat([grounding.tokens[frames]] + [alone[frames, i] for i in range(n)]),
        regions=torch.cat([grounding.regions[frames], torch.stack([r for r, _ in single])]),
        present=torch.cat([grounding.present[frames], torch.stack([p for _, p in single])]),
        **single_instance_weights(grounding, frames, n))


def single_instance_weights(grounding: Grounding, frames: torch.Tensor, n: int) -> dict:
    """weights and points of the MIS rows: the full layout's, then instance i's alone in slot 0 (it keeps its
    weight in its own trajectory); nothing when every weight is 1."""
    if grounding.weights is None:
        return {}
    weights, points = torch.ones(n * len(frames), grounding.weights.shape[1]), torch.zeros(n * len(frames), *grounding.points.shape[1:])
    index = torch.arange(n).repeat_interleave(len(frames))
    weights[:, 0] = grounding.weights[frames.repeat(n), index]
    points[:, 0] = grounding.points[frames.repeat(n), index]
    return {"weights": torch.cat([grounding.weights[frames], weights]),
            "points": torch.cat([grounding.points[frames], points])}


def trajectory_rows(grounding: Grounding, rows: torch.Tensor) -> Grounding:
    """The MIS grounding restricted to the given rows (one chunk of trajectories)."""
    weighted = {} if grounding.weights is None else {"weights": grounding.weights[rows], "points": grounding.points[rows]}
    return dataclasses.replace(grounding, tokens=grounding.tokens[rows], regions=grounding.regions[rows],
                               present=grounding.present[rows], **weighted)


def fuser_bytes_per_latent(latent_h: int, latent_w: int, element_size: int = 2, masked: bool = False,
                           channels: int = 320, heads: int = 8) -> int:
    """Peak extra bytes one latent (its cond and uncond rows) adds to a UNet call through the finest-grid fuser:
    the [visual | 184 grounding] tokens through norm/q/k/v/out/FF (about 12 copies of N+184 tokens x C), the attention
    scores of a non-fused attention backend (heads x N x (N+184)), and with masked attention one more frame mask
    (N x (N+184)) when latents do not share a layout frame. For sizing MIS passes from free memory."""
    n = latent_h * latent_w
    length = n + N_GROUNDING
    per_row = 12 * length * channels + heads * n * length
    return element_size * (2 * per_row + (n * length if masked else 0))
