"""Rectified flow beside DDPM: the two forward processes, and the one-line conversions between what a model predicts.

Stable Diffusion v1.5 (DDPM's variance-preserving process, Ho et al., 2020) and SD3 / Flux (rectified flow,
Liu et al., 2022; Esser et al., 2024) noise a clean latent x_0 with Gaussian noise eps in two ways:

    VP (SD v1.5):   x_t = a_t x_0 + s_t eps,       a_t = sqrt(alphas_cumprod[t]), s_t = sqrt(1 - alphas_cumprod[t])
    flow (SD3):     x_t = (1 - t) x_0 + t eps,     t in [0, 1]: a straight line from the image to the noise

and a network predicts one of four equivalent targets, each a linear function of (x_t, x_0, eps):

    eps                                  (SD v1.5)
    x_0                                  (the "predicted original sample" of notebook 03)
    v = a_t eps - s_t x_0                (v-prediction, Salimans & Ho, 2022: SD 2.x at 768 px)
    u = eps - x_0                        (the velocity dx_t/dt of the straight line, SD3 and Flux)

Given x_t and any one of them, the others follow (the functions below). A VP point is a flow point scaled:
x_VP / (a_t + s_t) lies on the straight line at t_flow = s_t / (a_t + s_t) (`vp_to_flow`), which is why one sampler
can serve both once the time axis is mapped. Training time steps of SD3 are drawn logit-normal (Esser et al., 2024,
Sec. 3.1), which spends the training on the middle of the path. Sampling is Euler's method on the velocity field,
x_{t'} = x_t + (t' - t) u (diffusers' `FlowMatchEulerDiscreteScheduler.step`).

This module is a lesson helper: it imports no other part of sdlab than its errors.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch

from .errors import InvalidInputError

__all__ = ["vp_coefficients", "x0_from_eps", "eps_from_x0", "v_from_x0_eps", "x0_from_v", "eps_from_v",
           "flow_sample", "velocity", "x0_from_velocity", "eps_from_velocity", "vp_to_flow",
           "logit_normal_timesteps", "euler_step", "straightness"]


def _unit_interval(t) -> torch.Tensor:
    t = torch.as_tensor(t, dtype=torch.float32)
    if not torch.isfinite(t).all() or (t < 0).any() or (t > 1).any():
        raise InvalidInputError(f"flow time t runs from 0 (the image) to 1 (pure noise); got {t.tolist()}")
    return t


def _like(coef, x: torch.Tensor) -> torch.Tensor:
    """A per-example coefficient (scalar or (batch,)) shaped to broadcast over x (batch, c, h, w)."""
    coef = torch.as_tensor(coef, dtype=x.dtype, device=x.device)
    return coef.reshape(-1, *([1] * (x.ndim - 1))) if coef.ndim else coef


# --------------------------------------------------------------------------- VP (DDPM, SD v1.5)

def vp_coefficients(alphas_cumprod: torch.Tensor, timesteps) -> tuple[torch.Tensor, torch.Tensor]:
    """(a_t, s_t) = (sqrt(abar_t), sqrt(1 - abar_t)) of DDPM's x_t = a_t x_0 + s_t eps, for integer timesteps."""
    timesteps = torch.as_tensor(timesteps, dtype=torch.long)
    n = len(alphas_cumprod)
    if (timesteps < 0).any() or (timesteps >= n).any():
        raise InvalidInputError(f"timesteps must lie in 0..{n - 1} (the scheduler's training steps); "
                                f"got {timesteps.tolist()}")
    abar = alphas_cumprod.float()[timesteps]
    return abar.sqrt(), (1 - abar).sqrt()


def x0_from_eps(x_t, eps, a, s):
    """x_0 = (x_t - s_t eps) / a_t: what notebook 03 calls the predicted original sample."""
    return (x_t - _like(s, x_t) * eps) / _like(a, x_t)


def eps_from_x0(x_t, x0, a, s):
    """eps = (x_t - a_t x_0) / s_t."""
    return (x_t - _like(a, x_t) * x0) / _like(s, x_t)


def v_from_x0_eps(x0, eps, a, s):
    """v = a_t eps - s_t x_0 (Salimans & Ho, 2022, Sec. 4; diffusers' `get_velocity`)."""
    return _like(a, x0) * eps - _like(s, x0) * x0


def x0_from_v(x_t, v, a, s):
    """x_0 = a_t x_t - s_t v (since a_t^2 + s_t^2 = 1)."""
    return _like(a, x_t) * x_t - _like(s, x_t) * v


def eps_from_v(x_t, v, a, s):
    """eps = s_t x_t + a_t v."""
    return _like(s, x_t) * x_t + _like(a, x_t) * v


# --------------------------------------------------------------------------- rectified flow (SD3, Flux)

def flow_sample(x0: torch.Tensor, eps: torch.Tensor, t) -> torch.Tensor:
    """x_t = (1 - t) x_0 + t eps: the straight line from the image (t = 0) to the noise (t = 1)."""
    t = _like(_unit_interval(t), x0)
    return (1 - t) * x0 + t * eps


def velocity(x0: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """u = d x_t / dt = eps - x_0: the flow model's training target (constant along the line)."""
    return eps - x0


def x0_from_velocity(x_t, u, t):
    """x_0 = x_t - t u."""
    return x_t - _like(_unit_interval(t), x_t) * u


def eps_from_velocity(x_t, u, t):
    """eps = x_t + (1 - t) u."""
    return x_t + (1 - _like(_unit_interval(t), x_t)) * u


def vp_to_flow(x_vp: torch.Tensor, a, s) -> tuple[torch.Tensor, torch.Tensor]:
    """A VP point x = a x_0 + s eps as a point of the straight line: (x / (a + s), t = s / (a + s))."""
    a, s = torch.as_tensor(a, dtype=torch.float32), torch.as_tensor(s, dtype=torch.float32)
    return x_vp / _like(a + s, x_vp), s / (a + s)


def logit_normal_timesteps(n: int, generator: torch.Generator | None = None, mean: float = 0.0,
                           std: float = 1.0) -> torch.Tensor:
    """n training times t = sigmoid(u), u ~ N(mean, std^2): SD3's logit-normal sampling (Esser et al., 2024,
    Sec. 3.1; their best setting is mean 0, std 1), denser in the middle of the path than at its ends."""
    if not isinstance(n, int) or n < 1:
        raise InvalidInputError(f"n is a number of timesteps (>= 1), got {n!r}")
    if std <= 0:
        raise InvalidInputError(f"std must be positive, got {std}")
    return torch.sigmoid(mean + std * torch.randn(n, generator=generator))


def euler_step(x_t: torch.Tensor, u: torch.Tensor, t, t_next) -> torch.Tensor:
    """One Euler step along the velocity field from t to t_next (< t when sampling): x_t + (t_next - t) u."""
    t, t_next = _unit_interval(t), _unit_interval(t_next)
    return x_t + _like(t_next - t, x_t) * u


def straightness(path: Sequence[torch.Tensor]) -> torch.Tensor:
    """Per sample, the length of a sampled path (the sum of its steps' distances) over the distance between its
    ends: 1.0 for a straight line, more for a curved one."""
    if len(path) < 2:
        raise InvalidInputError(f"a path needs at least two points, got {len(path)}")
    flat = [p.float().flatten(1) for p in path]
    length = sum((b - a).norm(dim=1) for a, b in zip(flat, flat[1:], strict=False))
    return length / (flat[-1] - flat[0]).norm(dim=1)
