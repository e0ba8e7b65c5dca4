"""Grounding gate (the official alpha schedule) over sampling progress, read from the host's noise level."""
import math

import torch


class GateSchedule:
    """Fuser scale: 1 for the first `full` fraction of sampling, linear to 0 over `decay`, then 0.

    Progress is the noise level: the host's timestep percent of the current sigma (the `start_percent`
    convention of core ComfyUI nodes, 1 - t/999 for SD1.5), so the gate holds for any sampler, scheduler, step
    count and split run (KSamplerAdvanced, the multi-instance sampler). The official code counts steps instead
    (alpha_generator: the first int(alpha * steps) of its 50 PLMS steps are grounded). The two agree exactly for
    schedulers uniform in the timestep: `normal` and `ddim_uniform` (the official timesteps) ground 40 of 50 steps
    at 0.8. Schedulers that crowd steps at low noise ground fewer: `karras` 19 of 30 steps at 0.8 (step fraction:
    24), `exponential` likewise; raise grounding_full to compensate.
    """

    def __init__(self, model_sampling, full: float, decay: float):
        self.full, self.decay = float(full), float(decay)
        grid = torch.linspace(0.0, 1.0, 1001, dtype=torch.float64)
        sig = [float(model_sampling.percent_to_sigma(max(float(p), 1e-6))) for p in grid[:-1]]
        sig.append(max(sig[-1] * 1e-3, 1e-12))
        self._log_sigmas = torch.tensor(sig, dtype=torch.float64).log()
        self._percents = grid

    def percent(self, sigma: float) -> float:
        """Inverse of percent_to_sigma by interpolation in log sigma (sigmas fall as percent rises)."""
        ls = math.log(max(sigma, 1e-12))
        idx = int(torch.searchsorted(-self._log_sigmas, torch.tensor([-ls], dtype=torch.float64)).item())
        if idx <= 0:
            return 0.0
        if idx >= len(self._percents):
            return 1.0
        l0, l1 = self._log_sigmas[idx - 1].item(), self._log_sigmas[idx].item()
        p0, p1 = self._percents[idx - 1].item(), self._percents[idx].item()
        return p0 + (p1 - p0) * (l0 - ls) / (l0 - l1) if l0 != l1 else p1

    def scale(self, percent: float) -> float:
        """Gate at sampling progress `percent`."""
        if percent < self.full:
            return 1.0
        if self.decay > 0 and percent < self.full + self.decay:
            return 1.0 - (percent - self.full) / self.decay
        return 0.0

    def __call__(self, sigma) -> float:
        """Gate at noise level `sigma` (a float or a one-element tensor; None: full strength)."""
        return 1.0 if sigma is None else self.scale(self.percent(float(sigma)))
