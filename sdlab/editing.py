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

from .sampling import decode, encode_prompt, guided_noise_pred


def image_to_tensor(image: np.ndarray, height: int, width: int) -> torch.Tensor:
    """uint8 (H, W, 3) -> float (1, 3, height, width) in [-1, 1], resized (bicubic) when needed."""
    x = torch.from_numpy(np.array(image)).permute(2, 0, 1)[None].float().div(127.5).sub(1.0)
    if x.shape[-2:] != (height, width):
        x = F.interpolate(x, size=(height, width), mode="bicubic", align_corners=False).clamp(-1, 1)
    return x


def latent_mask(mask: np.ndarray, latent_size: tuple[int, int]) -> torch.Tensor:
    """A pixel mask (H, W), True/1 = repaint, as a latent mask (1, 1, h, w) of 0s and 1s.

    As diffusers does: binarise at 0.5, then nearest-neighbour resize to the latents' size.
    """
    m = torch.from_numpy((np.asarray(mask, dtype=np.float32) >= 0.5).astype(np.float32))[None, None]
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
        raise ValueError(f"this UNet has {pipe.unet.config.in_channels} input channels; latent blending needs a "
                         "4-channel text-to-image UNet (a 9-channel inpainting UNet takes the mask as input instead)")
    size = pipe.unet.config.sample_size * pipe.vae_scale_factor
    device, dtype = pipe.device, pipe.unet.dtype
    generator = torch.Generator("cpu").manual_seed(seed)
    prompt_embeds = encode_prompt(pipe, prompt, None, guidance_scale > 1.0)
    pipe.scheduler.set_timesteps(num_inference_steps, device=device)
    timesteps = pipe.scheduler.timesteps
    # 1. the original's latents x_0 (a sample of the VAE posterior, drawn first, as diffusers does)
    x = image_to_tensor(image, size, size).to(device, pipe.vae.dtype)
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
