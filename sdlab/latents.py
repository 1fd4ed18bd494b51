"""Latent space: the VAE round trip, interpolation, image quality, and what diffusing in latents saves.

Stable Diffusion is a *latent* diffusion model (Rombach et al., 2022, "High-Resolution Image
Synthesis with Latent Diffusion Models"): a KL-regularised autoencoder (Sec. 3.1 and Appendix G)
squeezes an image (3, H, W) into latents (4, H/8, W/8) -- 48 times fewer numbers -- and the UNet
denoises those latents instead of pixels. Before diffusion the latents are multiplied by
`vae.config.scaling_factor` (0.18215 for SD v1.5, about 1 / std of the latents; Sec. 4.3.2 of the
paper) so that they have roughly unit variance, like the Gaussian noise they are mixed with.

Names follow diffusers: `latents` are *scaled* latents (what the UNet sees) unless a function says
otherwise; images are tensors (batch, 3, H, W), in [-1, 1] going into the VAE and in [0, 1]
coming out of `decode`.

    latents = encode(pipe, scene_images)      # (n, 4, h, w), scaled, on pipe.device
    images = decode(pipe, latents)            # (n, 3, H, W) in [0, 1], fp32 on the CPU
    psnr(images, originals)                   # dB per image
    slerp(noise_a, noise_b, 0.5)              # keeps the norm that lerp loses
    unet_flops(pipe.unet.config)              # FLOPs of one UNet call, counted, not timed

This module is a lesson helper: it imports `engines` and `images` only (never `viz` or `widgets`).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from . import checks
from .engines import native_size
from .errors import InvalidInputError
from .images import images_to_tensor

__all__ = [
    "images_to_tensor", "posterior", "encode", "decode", "lerp", "slerp", "psnr", "compression_factor",
    "thumbnail_baseline", "count_flops", "unet_flops", "vae_decoder_flops",
]


# --------------------------------------------------------------------------- the VAE round trip

@torch.no_grad()
def posterior(vae, x: torch.Tensor, batch_size: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The encoder's diagonal Gaussian q(z|x): its mean and std (n, 4, H/8, W/8), unscaled.

    Args:
        vae: an `AutoencoderKL` (`pipe.vae`).
        x: images (n, 3, H, W) in [-1, 1] (`images_to_tensor`), on any device.
        batch_size: images per encoder call; None: 16 up to 128 px, else 2 (SD's 512 px VAE is big).

    Returns:
        mean and std on the VAE's device, in its dtype.
    """
    batch_size = batch_size or (16 if x.shape[-1] <= 128 else 2)
    means, stds = [], []
    for i in range(0, x.shape[0], batch_size):
        dist = vae.encode(x[i:i + batch_size].to(vae.device, vae.dtype)).latent_dist
        means.append(dist.mean)
        stds.append(dist.std)
    return torch.cat(means), torch.cat(stds)


@torch.no_grad()
def encode(pipe, images: np.ndarray | torch.Tensor, *, scaled: bool = True,
           generator: torch.Generator | None = None, batch_size: int | None = None) -> torch.Tensor:
    """Images -> latents (n, 4, H/8, W/8) with the pipeline's VAE encoder.

    The encoder outputs a diagonal Gaussian q(z|x) (Kingma & Welling, 2014; Rombach et al., 2022,
    Appendix G). We take its mean -- deterministic, what a reconstruction test wants -- unless a
    `generator` is given, in which case we draw z ~ q(z|x) as diffusers' img2img pipeline does.

    Args:
        pipe: a `StableDiffusionPipeline` (any engine).
        images: uint8 (n, H, W, 3) arrays (resized to the engine's native size) or a tensor
            (n, 3, H, W) in [-1, 1].
        scaled: multiply by `vae.config.scaling_factor`, giving the latents the UNet works on.
        generator: None for the mean; a CPU generator to sample.
        batch_size: images per encoder call; None: 16 up to 128 px, else 2 (SD's 512 px VAE is big).

    Returns:
        latents on `pipe.device` in the VAE's dtype.
    """
    if isinstance(images, torch.Tensor):
        x = checks.image_tensor(images)
    else:
        x = images_to_tensor(images, native_size(pipe))
    mean, std = posterior(pipe.vae, x, batch_size)
    if generator is None:
        latents = mean
    else:  # z = mean + std * noise, the noise drawn on the CPU so that every device gets the same
        latents = mean + std * torch.randn(mean.shape, generator=generator, dtype=torch.float32).to(mean)
    return latents * pipe.vae.config.scaling_factor if scaled else latents


@torch.no_grad()
def decode(pipe, latents: torch.Tensor, *, scaling_factor: float | None = None,
           batch_size: int | None = None) -> torch.Tensor:
    """Scaled latents -> images (n, 3, H, W) in [0, 1], fp32 on the CPU, decoded in batches.

    image = decoder(latents / scaling_factor), then mapped from [-1, 1] to [0, 1] and clamped, as
    `StableDiffusionPipeline` does.

    Args:
        pipe: a `StableDiffusionPipeline` (any engine).
        latents: (n, 4, h, w), on any device and dtype.
        scaling_factor: None for `vae.config.scaling_factor`; pass another number to see what a
            wrong one does (notebook 04).
        batch_size: latents per decoder call; None: 16 for latents up to 16x16 (the tiny model's
            8x8), else 2 (SD v1.5's 64x64 latents decode to 512x512 and need much memory).
    """
    vae = pipe.vae
    checks.latent_tensor(latents, vae.config.latent_channels)
    batch_size = batch_size or (16 if latents.shape[-1] <= 16 else 2)
    sf = vae.config.scaling_factor if scaling_factor is None else scaling_factor
    if checks.number(sf, "scaling_factor") == 0:
        raise InvalidInputError("scaling_factor must be non-zero: decoding divides the latents by it")
    out = []
    for i in range(0, latents.shape[0], batch_size):
        z = latents[i:i + batch_size].to(pipe.device, vae.dtype) / sf
        image = vae.decode(z).sample  # (b, 3, H, W), roughly in [-1, 1]
        out.append((image.float() / 2 + 0.5).clamp(0, 1).cpu())
    return torch.cat(out)


def compression_factor(image_shape: Sequence[int], latent_shape: Sequence[int]) -> float:
    """How many times fewer numbers the latents hold than the image: prod(image) / prod(latents).

    (3, 512, 512) -> (4, 64, 64) is 786432 / 16384 = 48; so is (3, 64, 64) -> (4, 8, 8).
    A leading batch dimension, if both shapes have one, cancels.
    """
    return math.prod(image_shape) / math.prod(latent_shape)


# --------------------------------------------------------------------------- interpolation

def lerp(a: torch.Tensor, b: torch.Tensor, t: float | torch.Tensor) -> torch.Tensor:
    """Linear interpolation (1 - t) a + t b."""
    return torch.lerp(a, b, torch.as_tensor(t, dtype=a.dtype, device=a.device))


def slerp(a: torch.Tensor, b: torch.Tensor, t: float | torch.Tensor, dot_threshold: float = 0.9995) -> torch.Tensor:
    """Spherical linear interpolation (Shoemake, 1985), per sample along the first dimension.

        slerp(a, b, t) = sin((1 - t) theta) / sin(theta) * a + sin(t theta) / sin(theta) * b,
        theta = the angle between a and b (flattened).

    For two high-dimensional Gaussian noises a and b, |a| ~ |b| ~ sqrt(d) and a, b are almost
    orthogonal, so lerp's midpoint has norm about sqrt(d / 2): noise the sampler never saw.
    slerp walks along the sphere instead and keeps the norm (White, 2016, "Sampling Generative
    Networks"). Nearly parallel inputs (cos theta > dot_threshold) fall back to lerp.

    Args:
        a, b: tensors of the same shape (batch, ...); one vector per sample.
        t: a float, or a tensor of shape (batch,) giving each sample its own t.
    """
    checks.same_shape(a, b, ("a", "b"))
    if a.ndim == 1:
        return slerp(a[None], b[None], t, dot_threshold)[0]
    a32, b32 = a.float().flatten(1), b.float().flatten(1)
    t = torch.as_tensor(t, dtype=torch.float32, device=a.device).reshape(-1, 1).expand(a32.shape[0], 1)
    norms = a32.norm(dim=1, keepdim=True) * b32.norm(dim=1, keepdim=True)
    cos = (a32 * b32).sum(1, keepdim=True) / norms.clamp_min(1e-12)
    cos = cos.clamp(-1, 1)
    theta = torch.acos(cos)
    sin = torch.sin(theta).clamp_min(1e-12)
    spherical = (torch.sin((1 - t) * theta) / sin) * a32 + (torch.sin(t * theta) / sin) * b32
    linear = (1 - t) * a32 + t * b32
    out = torch.where(cos.abs() > dot_threshold, linear, spherical)
    return out.reshape(a.shape).to(a.dtype)


# --------------------------------------------------------------------------- image quality

def psnr(images: torch.Tensor, reference: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB, one value per image: 10 log10(range^2 / MSE).

    Args:
        images, reference: (n, 3, H, W) (or any shape with the batch first), same scale.
        data_range: 1.0 for images in [0, 1], 2.0 for [-1, 1], 255 for uint8.

    20 dB is an MSE of 1% of the range squared; every halving of the error adds about 6 dB.
    Identical images give +inf.
    """
    checks.same_shape(images, reference, ("images", "reference"))
    mse = (images.float() - reference.float()).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(data_range**2 / mse)


def thumbnail_baseline(images: torch.Tensor, factor: int = 8) -> torch.Tensor:
    """The naive way to keep fewer numbers: shrink an image `factor` times per side, enlarge it back.

    A (3, 64, 64) image shrunk 8x is (3, 8, 8): 192 numbers, fewer than the VAE's 256, the
    yardstick the VAE's reconstruction should beat. Area averaging down, bilinear up.
    """
    small = F.interpolate(images.float(), scale_factor=1 / factor, mode="area")
    return F.interpolate(small, size=images.shape[-2:], mode="bilinear", align_corners=False)


# --------------------------------------------------------------------------- compute, counted

def count_flops(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> int:
    """Floating-point operations of one call `fn(*args, **kwargs)` (a module or a method), counted by torch.

    `torch.utils.flop_counter.FlopCounterMode` adds up matrix multiplications, convolutions and
    attention (2 FLOPs per multiply-add); element-wise work (norms, activations) is not counted.
    Count on the "meta" device, where nothing is computed and no memory is used: there, attention
    is spelled out as matrix products and counted, whereas torch's fused CPU attention kernel has
    no FLOP formula and would be missed.
    """
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        fn(*args, **kwargs)
    return int(counter.get_total_flops())


def unet_flops(unet_config: Any, *, sample_size: int | None = None, in_channels: int | None = None,
               batch: int = 1, text_len: int = 77) -> int:
    """FLOPs of one call of a `UNet2DConditionModel` built from `unet_config`, on the meta device.

    Pass `sample_size=native_size(pipe), in_channels=3` to count the same architecture working on
    pixels instead of latents -- a pixel-space diffusion model, like DDPM's (Ho et al., 2020),
    with Stable Diffusion's UNet: what latent diffusion saves (Rombach et al., 2022, Sec. 3).

    Args:
        unet_config: `pipe.unet.config` (a FrozenDict) or a dict.
        sample_size: the side of the input (latents: `unet.config.sample_size`).
        in_channels: input and output channels (latents: 4).
        batch: samples per call (2 with classifier-free guidance).
        text_len: prompt tokens the cross-attention reads (77 for CLIP).
    """
    from diffusers import UNet2DConditionModel

    overrides = {}
    if sample_size is not None:
        overrides["sample_size"] = sample_size
    if in_channels is not None:
        overrides.update(in_channels=in_channels, out_channels=in_channels)
    with torch.device("meta"):
        unet = UNet2DConditionModel.from_config({**dict(unet_config), **overrides})
    cfg = unet.config
    side = cfg.sample_size
    sample = torch.empty(batch, cfg.in_channels, side, side, device="meta")
    text = torch.empty(batch, text_len, cfg.cross_attention_dim, device="meta")
    timestep = torch.full((batch,), 500, device="meta")
    return count_flops(unet, sample, timestep, encoder_hidden_states=text)


def vae_decoder_flops(vae_config: Any, latent_size: int, batch: int = 1) -> int:
    """FLOPs of one VAE decode of latents (batch, 4, latent_size, latent_size), on the meta device."""
    from diffusers import AutoencoderKL

    with torch.device("meta"):
        vae = AutoencoderKL.from_config(dict(vae_config))
    z = torch.empty(batch, vae.config.latent_channels, latent_size, latent_size, device="meta")
    return count_flops(vae.decode, z)
