"""Noise schedules and the forward (noising) process of diffusion, in closed form.

The forward process of DDPM (Ho et al., 2020, "Denoising Diffusion Probabilistic Models") adds
Gaussian noise in T small steps with variances beta_1..beta_T (eq. 2):

    q(x_t | x_{t-1}) = N(sqrt(1 - beta_t) x_{t-1}, beta_t I)

and, because a sum of Gaussians is Gaussian, any x_t can be drawn from x_0 in one jump (eq. 4):

    q(x_t | x_0) = N(sqrt(alpha_bar_t) x_0, (1 - alpha_bar_t) I),   alpha_bar_t = prod_{s<=t} (1 - beta_s)
    x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps,       eps ~ N(0, I)

The signal-to-noise ratio SNR(t) = alpha_bar_t / (1 - alpha_bar_t) (Kingma et al., 2021,
"Variational Diffusion Models") says how much of x_0 is left in x_t.

Three beta schedules, named as diffusers names them (`beta_schedule=`):

| name                | betas                                               | used by                     |
|---------------------|-----------------------------------------------------|-----------------------------|
| "linear"            | linear from 1e-4 to 0.02                            | DDPM (Ho et al., 2020)      |
| "scaled_linear"     | linear in sqrt(beta) from 0.00085 to 0.012, squared | Stable Diffusion v1.x (LDM) |
| "squaredcos_cap_v2" | alpha_bar(t) = cos^2(((t/T + s)/(1 + s)) pi/2)      | Nichol & Dhariwal (2021)    |
|  (`cosine_betas`)   |                                                     |                             |

Indexing follows diffusers, not the papers: timesteps run 0..T-1 and `alphas_cumprod[t]` is
the product over the first t+1 steps, so timestep 0 already holds one step of noise.
Everything here is plain torch (float32 by default, as diffusers computes it), so the values
can be compared with a scheduler's `betas` and `alphas_cumprod` exactly.
"""
from __future__ import annotations

import math

import torch

from . import checks
from .errors import InvalidInputError

SCHEDULES = ("linear", "scaled_linear", "cosine")
# diffusers' `beta_schedule` name for each of ours
DIFFUSERS_NAMES = {"linear": "linear", "scaled_linear": "scaled_linear", "cosine": "squaredcos_cap_v2"}
# Each schedule's defaults: DDPM's for "linear", SD v1.5's scheduler_config.json for "scaled_linear".
DEFAULT_RANGE = {"linear": (1e-4, 0.02), "scaled_linear": (0.00085, 0.012)}


def linear_betas(num_train_timesteps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02,
                 dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """DDPM's schedule (Ho et al., 2020, Sec. 4): betas linear from `beta_start` to `beta_end`.

    Returns:
        betas, shape (num_train_timesteps,).
    """
    return torch.linspace(beta_start, beta_end, num_train_timesteps, dtype=dtype)


def scaled_linear_betas(num_train_timesteps: int = 1000, beta_start: float = 0.00085, beta_end: float = 0.012,
                        dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Stable Diffusion's schedule: linear in sqrt(beta), then squared.

    The latent diffusion code (Rombach et al., 2022) calls this "linear"; diffusers calls it
    "scaled_linear". SD v1.5 uses beta_start=0.00085, beta_end=0.012, T=1000.

    Returns:
        betas, shape (num_train_timesteps,).
    """
    return torch.linspace(beta_start**0.5, beta_end**0.5, num_train_timesteps, dtype=dtype) ** 2


def cosine_betas(num_train_timesteps: int = 1000, s: float = 0.008, max_beta: float = 0.999,
                 dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The cosine schedule of Nichol & Dhariwal (2021, "Improved DDPM", eq. 17).

    alpha_bar(t) = f(t) / f(0) with f(t) = cos^2(((t/T + s) / (1 + s)) * pi/2), and
    beta_t = 1 - alpha_bar(t+1) / alpha_bar(t), clipped at `max_beta` (0.999) so that the last
    step stays finite. diffusers calls it "squaredcos_cap_v2".

    Returns:
        betas, shape (num_train_timesteps,).
    """
    def alpha_bar(t: float) -> float:
        return math.cos((t + s) / (1 + s) * math.pi / 2) ** 2

    T = num_train_timesteps
    betas = [min(1 - alpha_bar((i + 1) / T) / alpha_bar(i / T), max_beta) for i in range(T)]
    return torch.tensor(betas, dtype=dtype)


def make_betas(schedule: str, num_train_timesteps: int = 1000, beta_start: float | None = None,
               beta_end: float | None = None, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Betas for a schedule by name: "linear", "scaled_linear" or "cosine" (or diffusers' names).

    Args:
        schedule: the schedule's name; "squaredcos_cap_v2" is accepted for "cosine".
        beta_start, beta_end: None for the schedule's usual values (ignored by "cosine").
    """
    name = {v: k for k, v in DIFFUSERS_NAMES.items()}.get(schedule, schedule)
    if name == "cosine":
        return cosine_betas(num_train_timesteps, dtype=dtype)
    if name not in DEFAULT_RANGE:
        raise InvalidInputError(f"unknown beta schedule {schedule!r}; choose one of {SCHEDULES}")
    start, end = DEFAULT_RANGE[name]
    start = start if beta_start is None else beta_start
    end = end if beta_end is None else beta_end
    fn = linear_betas if name == "linear" else scaled_linear_betas
    return fn(num_train_timesteps, start, end, dtype=dtype)


def betas_from_config(config) -> torch.Tensor:
    """The betas a diffusers scheduler's config describes, e.g. `betas_from_config(pipe.scheduler.config)`."""
    if config.get("trained_betas") is not None:
        return torch.tensor(config["trained_betas"], dtype=torch.float32)
    return make_betas(config["beta_schedule"], config["num_train_timesteps"], config["beta_start"], config["beta_end"])


def alphas_cumprod(betas: torch.Tensor) -> torch.Tensor:
    """alpha_bar_t = prod_{s<=t} (1 - beta_s) (Ho et al., 2020, Sec. 2), same shape as `betas`."""
    return torch.cumprod(1.0 - betas, dim=0)


def snr(alphas_cumprod: torch.Tensor) -> torch.Tensor:
    """Signal-to-noise ratio alpha_bar_t / (1 - alpha_bar_t) of x_t.

    Kingma et al. (2021), "Variational Diffusion Models", eq. 2.
    """
    return alphas_cumprod / (1.0 - alphas_cumprod)


def first_timestep_below(values: torch.Tensor, threshold: float) -> int:
    """The first timestep at which a decreasing curve (e.g. SNR) falls below `threshold`; -1 if never."""
    below = torch.nonzero(values < threshold)
    return int(below[0]) if len(below) else -1


def _broadcast(coef: torch.Tensor, timesteps: torch.Tensor | int, like: torch.Tensor) -> torch.Tensor:
    """coef[t] shaped (batch, 1, 1, ...) to multiply a batch like `like`."""
    t = torch.as_tensor(timesteps, device=coef.device).long().reshape(-1)
    c = coef[t].to(device=like.device, dtype=like.dtype)
    return c.reshape(-1, *([1] * (like.ndim - 1))) if like.ndim > 0 else c.reshape(())


def q_sample(x0: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor | int,
             alphas_cumprod: torch.Tensor) -> torch.Tensor:
    """Draw x_t ~ q(x_t | x_0) in one jump (Ho et al., 2020, eq. 4):

        x_t = sqrt(alpha_bar_t) * x_0 + sqrt(1 - alpha_bar_t) * noise

    What diffusers' `scheduler.add_noise(x0, noise, timesteps)` computes.

    Args:
        x0: clean samples (batch, ...); a scalar timestep applies to every sample.
        noise: eps ~ N(0, I), same shape as x0.
        timesteps: one timestep per sample (batch,), or one int for all, in 0..T-1.
        alphas_cumprod: alpha_bar, shape (T,).
    """
    checks.same_shape(x0, noise, ("x0", "noise"))
    timesteps = checks.timesteps(timesteps, len(alphas_cumprod))
    sqrt_ab = _broadcast(alphas_cumprod.sqrt(), timesteps, x0)
    sqrt_1m_ab = _broadcast((1.0 - alphas_cumprod).sqrt(), timesteps, x0)
    return sqrt_ab * x0 + sqrt_1m_ab * noise


def q_step(x_prev: torch.Tensor, noise: torch.Tensor, t: int, betas: torch.Tensor) -> torch.Tensor:
    """One forward step x_{t-1} -> x_t of q(x_t | x_{t-1}) = N(sqrt(1 - beta_t) x_{t-1}, beta_t I) (eq. 2)."""
    checks.same_shape(x_prev, noise, ("x_prev", "noise"))
    beta = float(betas[int(checks.timesteps(t, len(betas), "t"))])
    return math.sqrt(1.0 - beta) * x_prev + math.sqrt(beta) * noise


def q_moments(x0: torch.Tensor, timesteps: torch.Tensor | int, alphas_cumprod: torch.Tensor
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean sqrt(alpha_bar_t) x_0 and variance (1 - alpha_bar_t) of q(x_t | x_0), each shaped like x0."""
    timesteps = checks.timesteps(timesteps, len(alphas_cumprod))
    mean = _broadcast(alphas_cumprod.sqrt(), timesteps, x0) * x0
    var = _broadcast(1.0 - alphas_cumprod, timesteps, x0).expand_as(x0)
    return mean, var
