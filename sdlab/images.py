"""Images between the three forms a lesson meets: uint8 pictures, the VAE's [-1, 1] tensors, and [0, 1] output.

Stable Diffusion's VAE reads and writes images as float tensors (batch, 3, H, W) in [-1, 1]
(Rombach et al., 2022, Appendix G; diffusers' `VaeImageProcessor` does the same mapping);
pipelines hand images back in [0, 1]; the shapes world draws, and its judge reads, uint8 RGB
arrays (H, W, 3). The two conversions are written here once:

    x = images_to_tensor(scenes)              # uint8 (n, H, W, 3) -> (n, 3, H, W) in [-1, 1]
    pictures = to_uint8(pipe_output_images)   # [0, 1] floats (tensor or array) -> uint8 (n, H, W, 3)

This module is a foundation: it imports only `errors`.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .errors import InvalidInputError

__all__ = ["images_to_tensor", "to_uint8"]

RESAMPLE = ("nearest", "bicubic")
ROUNDING = 1e-4  # floats this far outside [0, 1] are rounding error (a blend, a resize), not a wrong range


def images_to_tensor(images: np.ndarray | Sequence[np.ndarray], size: int | tuple[int, int] | None = None,
                     resample: str = "nearest") -> torch.Tensor:
    """uint8 images (n, H, W, 3) -> a float tensor (n, 3, h, w) in [-1, 1], what the VAE reads.

    Args:
        images: uint8 RGB arrays, e.g. `shapes.batch(shapes.sample(8))[0]`, or one (H, W, 3) image.
        size: the side, or (height, width), to resize to; None keeps H, W. Pass
            `engines.native_size(pipe)` to feed 64x64 shapes-world scenes to SD v1.5 (512).
        resample: "nearest" (flat colours stay flat: the shapes world's choice) or "bicubic"
            (photographs; the result is clipped back into [-1, 1], which bicubic overshoots).
    """
    arr = np.asarray(images)
    if arr.ndim == 3:
        arr = arr[None]
    if arr.ndim != 4 or arr.shape[-1] != 3 or arr.dtype != np.uint8:
        raise InvalidInputError(
            f"images must be uint8 RGB arrays of shape (n, H, W, 3) or (H, W, 3), got {arr.dtype} {arr.shape}; "
            "convert [0, 1] floats with sdlab.images.to_uint8 first")
    if resample not in RESAMPLE:
        raise InvalidInputError(f"resample must be one of {RESAMPLE}, got {resample!r}")
    x = torch.from_numpy(np.array(arr)).permute(0, 3, 1, 2).float() / 127.5 - 1  # a copy: the input may be read-only
    if size is not None:
        hw = (size, size) if isinstance(size, int) else tuple(size)
        if len(hw) != 2 or min(hw) < 1:
            raise InvalidInputError(f"size must be a positive side or (height, width), got {size!r}")
        if tuple(x.shape[-2:]) != hw:
            if resample == "nearest":
                x = F.interpolate(x, size=hw, mode="nearest")
            else:
                x = F.interpolate(x, size=hw, mode="bicubic", align_corners=False).clamp(-1, 1)
    return x


def to_uint8(images) -> np.ndarray:
    """Images in [0, 1] -> uint8 RGB arrays (n, H, W, 3), rounded: what the judge and PIL read.

    Args:
        images: a tensor (n, 3, H, W) or (3, H, W), as `latents.decode` and `sampling.text_to_image`
            return; or an array (n, H, W, 3) or (H, W, 3), as `pipe(..., output_type="np").images`;
            or a list of either. Values must lie in [0, 1]: images in [-1, 1] (the VAE's own
            output) are mapped with `x / 2 + 0.5` first.
    """
    if isinstance(images, (list, tuple)):
        return np.concatenate([to_uint8(im) for im in images])
    if isinstance(images, torch.Tensor):
        t = images.detach().float().cpu()
        if t.ndim == 3:
            t = t[None]
        if t.ndim != 4 or t.shape[1] != 3:
            raise InvalidInputError(f"a tensor of images must be (n, 3, H, W) or (3, H, W), got {tuple(t.shape)}")
        arr = t.permute(0, 2, 3, 1).numpy()
    else:
        arr = np.asarray(images)
        if arr.dtype == np.uint8:
            raise InvalidInputError("these images are uint8 already; to_uint8 converts [0, 1] floats")
        arr = arr.astype(np.float32)
        if arr.ndim == 3:
            arr = arr[None]
        if arr.ndim != 4 or arr.shape[-1] != 3:
            raise InvalidInputError(f"an array of images must be (n, H, W, 3) or (H, W, 3), got {arr.shape}")
    if arr.size and (np.isnan(arr).any() or arr.min() < -ROUNDING or arr.max() > 1 + ROUNDING):
        finite = arr[np.isfinite(arr)]
        span = f"{finite.min():.3f} to {finite.max():.3f}" if finite.size else "no finite values"
        raise InvalidInputError(
            f"images must lie in [0, 1] (got {span}{', with NaNs' if np.isnan(arr).any() else ''}); "
            "map [-1, 1] images with x / 2 + 0.5 first")
    return (np.clip(arr, 0, 1) * 255).round().astype(np.uint8)  # the clip only removes rounding error
