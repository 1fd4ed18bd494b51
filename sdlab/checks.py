"""The input checks every lesson helper shares: each raises `InvalidInputError` naming the fix.

A learner calls these helpers with values of their own: a timestep of -1 (which would silently
index alpha_bar[999], the noisiest step), a 63x63 image (which the VAE would quietly crop), a
NaN guidance scale (which would generate noise). Nothing is clamped or wrapped: a wrong value
stops with a sentence that says what range is allowed and why.

This module is a foundation: it imports only `errors`.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from .errors import InvalidInputError

__all__ = ["count", "number", "timesteps", "image_tensor", "latent_tensor", "same_shape", "choice"]


def count(value, name: str, minimum: int = 1, example: int | None = None) -> int:
    """A whole number >= `minimum` (bools are refused: True is not a step count)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        hint = f" Try {name}={example}." if example is not None else ""
        raise InvalidInputError(f"{name} must be a whole number of at least {minimum}, got {value!r}.{hint}")
    return int(value)


def number(value, name: str, low: float | None = None, high: float | None = None, why: str = "") -> float:
    """A finite real number in [low, high] (either bound may be None)."""
    ok = not isinstance(value, bool) and isinstance(value, (int, float, np.integer, np.floating))
    if ok:
        value = float(value)
        ok = math.isfinite(value) and (low is None or value >= low) and (high is None or value <= high)
    if not ok:
        bounds = (f"between {low} and {high}" if low is not None and high is not None
                  else f">= {low}" if low is not None else f"<= {high}" if high is not None else "finite")
        raise InvalidInputError(f"{name} must be a finite number {bounds}, got {value!r}{'; ' + why if why else ''}")
    return value


def timesteps(value, num_train_timesteps: int, name: str = "timesteps") -> torch.Tensor:
    """Training timesteps as a long tensor, each a whole number in 0..T-1 (diffusers' indexing).

    A negative index would wrap around (t = -1 is t = T-1, pure noise), so it is refused.
    """
    t = torch.as_tensor(value)
    if t.dtype == torch.bool or t.is_complex() or (t.is_floating_point() and not torch.equal(t, t.round())):
        raise InvalidInputError(f"{name} must be whole numbers (training steps 0..{num_train_timesteps - 1}), "
                                f"got {value!r}")
    t = t.long()
    if t.numel() and (t.min() < 0 or t.max() >= num_train_timesteps):
        raise InvalidInputError(
            f"{name} run from 0 (almost clean) to {num_train_timesteps - 1} (almost pure noise) in diffusers' "
            f"indexing; got {t.min().item()}..{t.max().item()}. A negative t would silently mean t = "
            f"{num_train_timesteps - 1} (the index wraps), so it is refused.")
    return t


def image_tensor(x, name: str = "images", low: float = -1.0, high: float = 1.0) -> torch.Tensor:
    """A float image batch (n, 3, H, W) with H and W multiples of 8, values in [low, high]."""
    if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.ndim != 4 or x.shape[1] != 3:
        shape = tuple(x.shape) if hasattr(x, "shape") else type(x).__name__
        raise InvalidInputError(f"{name} must be a float tensor (n, 3, H, W), got {shape}; "
                                "convert uint8 pictures with sdlab.images.images_to_tensor")
    h, w = x.shape[-2:]
    if h % 8 or w % 8:
        raise InvalidInputError(f"{name} are {h}x{w}; the VAE shrinks images 8x, so both sides must divide by 8 "
                                f"(e.g. {max(8, h // 8 * 8)}x{max(8, w // 8 * 8)}): resize or crop them first")
    if x.numel():
        lo, hi = float(x.min()), float(x.max())
        tolerance = 1e-3 * (high - low)
        if not (math.isfinite(lo) and math.isfinite(hi)) or lo < low - tolerance or hi > high + tolerance:
            raise InvalidInputError(f"{name} must lie in [{low:g}, {high:g}], got {lo:.3g} to {hi:.3g}"
                                    + ("; map [0, 1] images with x * 2 - 1 first" if low == -1 else ""))
    return x


def latent_tensor(z, channels: int, name: str = "latents") -> torch.Tensor:
    """A latent batch (n, channels, h, w) of finite floats."""
    if not isinstance(z, torch.Tensor) or not z.is_floating_point() or z.ndim != 4 or z.shape[1] != channels:
        shape = tuple(z.shape) if hasattr(z, "shape") else type(z).__name__
        raise InvalidInputError(f"{name} must be a float tensor (n, {channels}, h, w), got {shape}; "
                                "one latent is latents[i:i + 1], not latents[i]")
    if not torch.isfinite(z).all():
        raise InvalidInputError(f"{name} hold NaN or infinite values")
    return z


def same_shape(a, b, names: tuple[str, str]) -> None:
    """Two arrays or tensors of one shape."""
    if tuple(a.shape) != tuple(b.shape):
        raise InvalidInputError(f"{names[0]} {tuple(a.shape)} and {names[1]} {tuple(b.shape)} must have one shape")


def choice(value, name: str, options) -> str:
    """One of a fixed set of names."""
    if value not in options:
        raise InvalidInputError(f"{name} must be one of {tuple(options)}, got {value!r}")
    return value
