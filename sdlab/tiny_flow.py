"""The tiny-flow engine's architecture: Stable Diffusion 3's denoiser and sampler on the tiny engine's world.

Stable Diffusion 3 (Esser et al., 2024, "Scaling Rectified Flow Transformers for High-Resolution Image
Synthesis") changed two things that this engine keeps, and several that it does not:

- **the objective**: rectified flow (Liu et al., 2022) instead of DDPM's noise prediction. The latents move on
  the straight line x_t = (1 - t) x_0 + t eps, and the network predicts its velocity eps - x_0
  (`sdlab.losses.flow_matching_loss`); training times are logit-normal (their Sec. 3.1). Sampling is Euler's
  method on that velocity: diffusers' `FlowMatchEulerDiscreteScheduler`.
- **the denoiser**: a transformer (MM-DiT, their Sec. 4) instead of a UNet. The latent is cut into 2x2 patches,
  one token each, and image tokens and text tokens go through the same attention ("joint attention"), each
  with its own weights; the pooled text embedding and the timestep modulate every block (adaLN-Zero, from
  DiT, Peebles & Xie, 2023). Here that is diffusers' `SD3Transformer2DModel` with 2 blocks of width 128 on
  the 8x8x4 latents: 16 image tokens beside 154 text tokens.

Kept from the tiny engine, frozen: the VAE (8x8x4 latents, the same scaling factor; SD3's own VAE has 16
channels), the CLIP tokenizer, and the 3-layer text encoder, which plays both of SD3's CLIP encoders (CLIP
ViT-L and OpenCLIP bigG) through an identity projection (`with_projection`). SD3's third encoder, T5-XXL, is
left out, as SD3 allows at inference (their paper measures what that costs): the pipeline fills its place with
zeros. SD3 reads CLIP's penultimate layer (`hidden_states[-2]`) as the token embeddings, so this engine does too.

The trained transformer lives in `sdlab/assets/tiny-flow/`; `python -m sdlab.train --denoiser sd3-flow`
makes it, and `sdlab.load_pipeline("tiny-flow")` puts it in a standard `StableDiffusion3Pipeline`.
"""
from __future__ import annotations

import torch
from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel, StableDiffusion3Pipeline
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

from .tiny import ASSETS, IMAGE_SIZE, LATENT_CHANNELS, TEXT_HIDDEN, VAE_SCALE_FACTOR

FLOW_DIR = ASSETS / "tiny-flow"

# SD3's pipeline puts T5's tokens after CLIP's; with no T5 it puts that many zero vectors there. The transformer
# was trained with 77 of them (CLIP's length), so `sdlab.generate` passes max_sequence_length=77; the pipeline's
# default, 256, gives the same adherence (measured: 120 prompts, identical rates) at ~1.4x the time.
MAX_SEQUENCE_LENGTH = 77
PATCH_SIZE = 2  # as SD3: a 2x2 patch of the latent is one token
WIDTH = 128     # SD3 medium: 24 blocks of width 1536 (64 per head x 24 heads)


def build_transformer() -> SD3Transformer2DModel:
    """An MM-DiT of 2 joint blocks, width 128 (4 heads of 32), on 8x8x4 latents: 16 image tokens.

    The text arrives as SD3 builds it: both CLIP encoders' token embeddings side by side (64 + 64 = 128 =
    `joint_attention_dim`) and their pooled embeddings side by side (`pooled_projection_dim` 128).
    Two blocks, not more: one image at 25 steps with guidance then takes ~0.2 s on 2 CPU threads;
    4 blocks took ~0.5 s (measured with `StableDiffusion3Pipeline`, 64 px).
    """
    side = IMAGE_SIZE // VAE_SCALE_FACTOR
    return SD3Transformer2DModel(
        sample_size=side, patch_size=PATCH_SIZE, in_channels=LATENT_CHANNELS, out_channels=LATENT_CHANNELS,
        num_layers=2, attention_head_dim=32, num_attention_heads=WIDTH // 32,
        joint_attention_dim=2 * TEXT_HIDDEN, caption_projection_dim=WIDTH, pooled_projection_dim=2 * TEXT_HIDDEN,
        pos_embed_max_size=side,
    )


def with_projection(text_encoder: CLIPTextModel) -> CLIPTextModelWithProjection:
    """The same CLIP text encoder as the class SD3 loads, whose pooled output is a projection of the EOS row.

    The projection is the identity, so the pooled embedding is the tiny encoder's EOS row itself; the weights
    are the tiny engine's (nothing is trained here).
    """
    config = CLIPTextConfig(**{**text_encoder.config.to_dict(), "projection_dim": text_encoder.config.hidden_size})
    projected = CLIPTextModelWithProjection(config)
    # transformers 5's CLIPTextModel is the text transformer itself; the projection class wraps one as `text_model`
    inner = getattr(text_encoder, "text_model", text_encoder)
    projected.text_model.load_state_dict(inner.state_dict())
    with torch.no_grad():
        projected.text_projection.weight.copy_(torch.eye(config.hidden_size))
    return projected.to(text_encoder.device, text_encoder.dtype).eval()


def build_scheduler() -> FlowMatchEulerDiscreteScheduler:
    """Euler on the velocity field over 1000 training times, with no shift of the time axis.

    SD3 shifts its times towards the noise (shift 3.0, their Sec. 5.3.2): a 1024 px image has so many pixels
    that it still shows its layout at a noise level that blots out a 64 px one. At 64 px there is nothing to
    make up for, so shift is 1.
    """
    return FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=1.0)


def assemble(vae: AutoencoderKL, text_encoder: CLIPTextModelWithProjection, tokenizer: CLIPTokenizer,
             transformer: SD3Transformer2DModel, scheduler=None) -> StableDiffusion3Pipeline:
    """A standard `StableDiffusion3Pipeline`: the one text encoder in both CLIP places, no T5.

    SD3's VAE shifts its latents before scaling ((z - shift_factor) * scaling_factor); the tiny VAE does not,
    so its config gets shift_factor 0.
    """
    if vae.config.get("shift_factor") is None:
        vae.register_to_config(shift_factor=0.0)
    pipe = StableDiffusion3Pipeline(
        transformer=transformer, scheduler=scheduler or build_scheduler(), vae=vae,
        text_encoder=text_encoder, tokenizer=tokenizer, text_encoder_2=text_encoder, tokenizer_2=tokenizer,
        text_encoder_3=None, tokenizer_3=None)
    pipe.set_progress_bar_config(disable=True)
    return pipe
