"""The training objectives a lesson writes out: the VAE's, the diffusion model's, and the learning-rate schedule.

Used by `sdlab.train` (the command that trains the tiny engine), `sdlab.finetune` (textual
inversion and LoRA, notebook 07) and notebook 06, which trains a small student with them.

- `vae_loss`: reconstruction + a tiny KL term, SD's autoencoder objective (Rombach et al., 2022,
  Appendix G).
- `diffusion_loss`: noise prediction, DDPM's simple objective (Ho et al., 2020, eq. 14), with
  optional min-SNR weighting (Hang et al., 2023).
- `flow_matching_loss`: rectified flow's velocity objective with logit-normal timesteps, SD3's
  (Esser et al., 2024, Sec. 2-3); `sdlab.flow` has its conversions to and from the other targets.
- `lr_lambda`: linear warm-up, then cosine decay (Loshchilov & Hutter, 2017).

This module is a lesson helper: of sdlab it imports only `flow` (the straight line and its velocity).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from diffusers.training_utils import compute_snr

from . import flow

__all__ = ["vae_loss", "diffusion_loss", "flow_matching_loss", "lr_lambda"]


def vae_loss(vae, x: torch.Tensor, kl_weight: float, generator: torch.Generator | None = None):
    """Reconstruction (MSE + L1) + kl_weight * KL(q(z|x) || N(0, I)); returns (loss, mse).

    SD's autoencoder sums the reconstruction loss over pixels and the KL over latent elements,
    with weight 1e-6 on the KL. Our reconstruction terms are means over the x.numel() / batch
    pixel values of an image, so the KL is divided by that count too: the same balance. (Taking
    the KL per image against a per-pixel mean makes it ~10^4 times stronger; the latents then
    blur towards N(0, I) and every colour washes out.)
    """
    posterior = vae.encode(x).latent_dist
    z = posterior.sample(generator=generator)
    recon = vae.decode(z).sample
    mse = F.mse_loss(recon, x)
    values_per_image = x[0].numel()
    loss = mse + F.l1_loss(recon, x) + kl_weight * posterior.kl().mean() / values_per_image
    return loss, mse


def diffusion_loss(unet, text_encoder, latents: torch.Tensor, input_ids: torch.Tensor, noise_scheduler,
                   generator: torch.Generator | None = None, snr_gamma: float | None = None) -> torch.Tensor:
    """The noise-prediction objective of DDPM (Ho et al., 2020, eq. 14) on scaled latents.

    Symbols: x_0 = `latents`, epsilon = `noise`, t = `timesteps`,
    x_t = sqrt(alphas_cumprod[t]) x_0 + sqrt(1 - alphas_cumprod[t]) epsilon  (`add_noise`).
    """
    # 1. sample noise and a timestep per example
    noise = torch.randn(latents.shape, generator=generator).to(latents.device)
    timesteps = torch.randint(0, noise_scheduler.config.num_train_timesteps, (latents.shape[0],), generator=generator)
    timesteps = timesteps.to(latents.device)
    # 2. forward diffusion q(x_t | x_0) in closed form
    noisy_latents = noise_scheduler.add_noise(latents, noise, timesteps)
    # 3. predict the noise from x_t, t and the caption
    prompt_embeds = text_encoder(input_ids)[0]
    noise_pred = unet(noisy_latents, timesteps, encoder_hidden_states=prompt_embeds).sample
    if snr_gamma is None:
        return F.mse_loss(noise_pred, noise)
    # 4. min-SNR weighting (Hang et al., 2023): w_t = min(SNR_t, gamma) / SNR_t for epsilon targets
    snr = compute_snr(noise_scheduler, timesteps)
    weights = torch.clamp(snr, max=snr_gamma) / snr
    per_example = F.mse_loss(noise_pred, noise, reduction="none").mean(dim=(1, 2, 3))
    return (per_example * weights).mean()


def flow_matching_loss(predict, latents: torch.Tensor, generator: torch.Generator | None = None,
                       logit_mean: float = 0.0, logit_std: float = 1.0,
                       num_train_timesteps: int = 1000) -> torch.Tensor:
    """Rectified flow on scaled latents, as SD3 trains (Esser et al., 2024): predict the velocity.

    Symbols: x_0 = `latents`, epsilon = `noise`, t in (0, 1) logit-normal (their Sec. 3.1: t = sigmoid(u),
    u ~ N(logit_mean, logit_std^2)), x_t = (1 - t) x_0 + t epsilon, target u = epsilon - x_0.

    `predict(x_t, timesteps)` is the denoiser with its conditioning bound: a UNet with the prompt's embeddings,
    or SD3's transformer with its pooled embedding too. It sees t * num_train_timesteps, the timestep
    `FlowMatchEulerDiscreteScheduler` hands it when sampling.
    """
    # 1. noise and a logit-normal time per example
    noise = torch.randn(latents.shape, generator=generator).to(latents.device)
    t = flow.logit_normal_timesteps(latents.shape[0], generator, logit_mean, logit_std).to(latents.device)
    # 2. the straight line from the image to the noise
    noisy_latents = flow.flow_sample(latents, noise, t)
    # 3. predict the velocity from x_t and t (and the caption the denoiser was given)
    return F.mse_loss(predict(noisy_latents, t * num_train_timesteps), flow.velocity(latents, noise))


def lr_lambda(warmup: int, total: int):
    """Linear warm-up, then cosine decay to 10% of the peak learning rate."""
    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))
    return f
