"""Multi-instance sampler (MIS): trajectories (full + one per instance), their grounding, text, noise; the average."""
import dataclasses
import math

import torch

from .errors import InstDiffError
from .grounding import Grounding
from .preprocess import layout_to_grounding_inputs, null_grounding_inputs


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


def single_instance_inputs(inputs: dict, index: int) -> dict:
    """Slot `index` of a layout's grounding inputs alone in slot 0: an MIS trajectory's inputs, with the same
    points sampled from masks as the full layout's (official prepare_instance_meta slices the full meta)."""
    out = null_grounding_inputs(1)
    for name, value in inputs.items():
        out[name][0, 0] = value[0, index]
    return out


def single_instance_regions(grounding: Grounding, frame: int, index: int) -> tuple:
    """(regions, present) of instance `index` of `frame` alone in slot 0, sliced from the full grounding."""
    regions = torch.zeros_like(grounding.regions[frame])
    present = torch.zeros_like(grounding.present[frame])
    regions[0], present[0] = grounding.regions[frame, index], grounding.present[frame, index]
    return regions, present


@torch.no_grad()
def mis_grounding(tokenizer, grounding: Grounding, per: int, chunk: int = 8) -> Grounding:
    """Grounding for T = n+1 trajectories x `per` latents: row t*per+b is trajectory t of latent b.

    Trajectory 0 is the full layout; trajectory i >= 1 is instance i-1 alone in slot 0, from the full layout's
    preprocessed inputs (the same seed, so the same scribble / polygon points) and its region.
    """
    counts = {len(layout.instances) for layout in grounding.layouts}
    if len(counts) != 1:
        raise InstDiffError(f"MIS needs the same instances in every layout frame, got counts {sorted(counts)}")
    n = counts.pop()
    device = next(tokenizer.parameters()).device
    tokens = []  # per frame: (n, 184, 768)
    for layout, emb in zip(grounding.layouts, grounding.phrase_embeddings):
        full = layout_to_grounding_inputs(layout, emb, grounding.seed)
        singles = [single_instance_inputs(full, i) for i in range(n)]
        for start in range(0, n, chunk):
            part = singles[start:start + chunk]
            batch = {k: torch.cat([p[k] for p in part]).to(device) for k in part[0]}
            tokens.append(tokenizer(**batch, drop=grounding.drop)[0].float().cpu())
    tokens = torch.cat(tokens).reshape(grounding.frames, n, *grounding.tokens.shape[1:])
    frames = grounding.frames_for(per)
    single = [single_instance_regions(grounding, int(f), i) for i in range(n) for f in frames]
    return dataclasses.replace(
        grounding,
        tokens=torch.cat([grounding.tokens[frames]] + [tokens[frames, i] for i in range(n)]),
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
