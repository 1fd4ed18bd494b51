"""Editing an existing image: inpainting with a model that was never trained to inpaint.

Stable Diffusion's own inpainting checkpoint (stable-diffusion-v1-5/stable-diffusion-inpainting)
has a UNet with 9 input channels: the 4 noisy latents, 1 channel of mask and the 4 latents of
the masked image, and was trained further for the task. A plain text-to-image UNet (4 input
channels, like the tiny engine's) can still inpaint by *latent blending*: denoise as usual, and
after every step overwrite the region to keep with the original image's latents, noised to the
level of the next step (Meng et al., 2022, "SDEdit"; Lugmayr et al., 2022, "RePaint"; Avrahami
et al., 2023, "Blended Latent Diffusion"). This is what diffusers'
`StableDiffusionInpaintPipeline` does when its UNet has 4 channels; `inpaint` below reproduces
that pipeline's output for the same seed (tests/test_editing.py checks it).

Symbols: `image_latents` = x_0 of the original, `noise` = epsilon, `mask` = m (1 where the
model repaints, 0 where the original is kept), x_t = `latents`. After each step t -> t':

    latents = m * latents + (1 - m) * (sqrt(abar_t') x_0 + sqrt(1 - abar_t') epsilon)
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .engines import check_call, native_size
from .errors import InvalidInputError
from .images import images_to_tensor
from .latents import decode
from .sampling import encode_prompt, guided_noise_pred


def latent_mask(mask: np.ndarray, latent_size: tuple[int, int]) -> torch.Tensor:
    """A pixel mask (H, W), True/1 = repaint, as a latent mask (1, 1, h, w) of 0s and 1s.

    As diffusers does: binarise at 0.5, then nearest-neighbour resize to the latents' size.
    """
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise InvalidInputError(f"mask must be one 2-D array (H, W), True where to repaint; got shape {mask.shape}")
    m = torch.from_numpy((mask.astype(np.float32) >= 0.5).astype(np.float32))[None, None]
    return F.interpolate(m, size=latent_size)


@torch.no_grad()
def inpaint(pipe, image: np.ndarray, mask: np.ndarray, prompt: str, *, seed: int = 0, num_inference_steps: int = 25,
            guidance_scale: float = 7.5) -> torch.Tensor:
    """Repaint the masked part of `image` to follow `prompt`; returns (1, 3, H, W) in [0, 1].

    Args:
        pipe: any text-to-image `StableDiffusionPipeline` with a 4-channel UNet.
        image: uint8 (H, W, 3); resized to the pipeline's native size.
        mask: (H, W), True where the model may paint, False where the image is kept.
        seed: seeds a fresh CPU generator, used as `StableDiffusionInpaintPipeline` uses it.
    """
    if pipe.unet.config.in_channels != 4:
        raise InvalidInputError(f"this UNet has {pipe.unet.config.in_channels} input channels; latent blending "
                                "needs a 4-channel text-to-image UNet (a 9-channel inpainting UNet takes the mask "
                                "as input instead)")
    image, mask = np.asarray(image), np.asarray(mask)
    if image.ndim != 3 or image.shape[-1] != 3 or image.dtype != np.uint8:
        raise InvalidInputError(f"image must be one uint8 RGB array (H, W, 3), got {image.dtype} {image.shape}; "
                                "convert [0, 1] floats with sdlab.images.to_uint8")
    if mask.shape != image.shape[:2]:
        raise InvalidInputError(f"mask {mask.shape} must cover the image pixel for pixel: shape {image.shape[:2]}")
    size = native_size(pipe)
    check_call(pipe, size, size, num_inference_steps, guidance_scale)
    device, dtype = pipe.device, pipe.unet.dtype
    generator = torch.Generator("cpu").manual_seed(seed)
    prompt_embeds = encode_prompt(pipe, prompt, None, guidance_scale > 1.0)
    pipe.scheduler.set_timesteps(num_inference_steps, device=device)
    timesteps = pipe.scheduler.timesteps
    # 1. the original's latents x_0 (a sample of the VAE posterior, drawn first, as diffusers does)
    x = images_to_tensor(image, size, resample="bicubic").to(device, pipe.vae.dtype)
    image_latents = pipe.vae.encode(x).latent_dist.sample(generator) * pipe.vae.config.scaling_factor
    # 2. x_T: pure noise (strength 1)
    noise = torch.randn(image_latents.shape, generator=generator, dtype=dtype).to(device)
    latents = noise * pipe.scheduler.init_noise_sigma
    m = latent_mask(mask, tuple(image_latents.shape[-2:])).to(device, dtype)  # (1, 1, h, w)
    for i, t in enumerate(timesteps):
        # 3. an ordinary guided denoising step on the whole image
        noise_pred = guided_noise_pred(pipe, latents, t, prompt_embeds, guidance_scale)
        latents = pipe.scheduler.step(noise_pred, t, latents).prev_sample
        # 4. keep the original outside the mask, noised to the next step's level (clean at the end)
        known = image_latents
        if i < len(timesteps) - 1:
            known = pipe.scheduler.add_noise(image_latents, noise, torch.tensor([timesteps[i + 1]]))
        latents = m * latents + (1 - m) * known
    return decode(pipe, latents)
