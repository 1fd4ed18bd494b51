"""Text to image by hand: the loop inside `StableDiffusionPipeline.__call__`, written out.

Latent diffusion (Rombach et al., 2022) generates in four moves:

1. encode the prompt, and the empty (or negative) prompt, with the CLIP text encoder;
2. draw Gaussian noise x_T in latent space (batch, 4, h/8, w/8) from a CPU generator;
3. for each timestep t: predict the noise twice in one batch -- without and with the text --
   and mix the two with classifier-free guidance (Ho & Salimans, 2022, eq. 6, written with diffusers'
   guidance_scale s = 1 + w, the paper's weight w):
       noise_pred = noise_pred_uncond + guidance_scale * (noise_pred_text - noise_pred_uncond)
   then let the scheduler take one step x_t -> x_{t-1} (DDIM: Song et al., 2021, eq. 12);
4. decode the final latents with the VAE: image = decoder(latents / scaling_factor).

`text_to_image` reproduces `pipe(prompt, generator=torch.Generator().manual_seed(seed))` for the
same seed, with any scheduler, stochastic ones too (the tests and notebook 05 assert it), and can
record every step for the widgets.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass, field

import torch

from . import checks
from .engines import check_call, check_prompt, native_size
from .errors import InvalidInputError
from .latents import decode
from .text import tokenize


@torch.no_grad()
def encode_prompt(pipe, prompt: str | list[str], negative_prompt: str | list[str] | None = None,
                  guidance: bool = True) -> torch.Tensor:
    """Prompt embeddings (batch, 77, d), with the unconditional ones first when `guidance` is on.

    d is 768 for SD v1.5 and 64 for the tiny engine.
    """
    prompts = check_prompt(pipe, prompt)
    ids = tokenize(pipe.tokenizer, prompts).to(pipe.device)
    prompt_embeds = pipe.text_encoder(ids)[0]  # last_hidden_state: (batch, 77, d)
    if not guidance:
        return prompt_embeds
    negative = [""] * len(prompts) if negative_prompt is None else (
        [negative_prompt] * len(prompts) if isinstance(negative_prompt, str)
        else check_prompt(pipe, negative_prompt, "negative_prompt"))
    if len(negative) != len(prompts):
        raise InvalidInputError(f"give one negative prompt, or one per prompt: got {len(negative)} for "
                                f"{len(prompts)} prompts")
    neg_ids = tokenize(pipe.tokenizer, negative).to(pipe.device)
    negative_embeds = pipe.text_encoder(neg_ids)[0]
    return torch.cat([negative_embeds, prompt_embeds])  # (2 * batch, 77, d): uncond first, as diffusers


def initial_latents(pipe, batch: int, height: int, width: int, generator: torch.Generator) -> torch.Tensor:
    """x_T ~ N(0, I) of shape (batch, 4, height/8, width/8), drawn on the CPU, scaled for the scheduler."""
    check_call(pipe, height, width, num_inference_steps=1, guidance_scale=1.0, num_images_per_prompt=batch)
    shape = (batch, pipe.unet.config.in_channels, height // pipe.vae_scale_factor, width // pipe.vae_scale_factor)
    latents = torch.randn(shape, generator=generator, dtype=pipe.unet.dtype).to(pipe.device)
    return latents * pipe.scheduler.init_noise_sigma


def unet_calls(scheduler, num_inference_steps: int) -> int:
    """How many UNet calls one image takes with `scheduler` at `num_inference_steps`: one per timestep.

    DDIM, DDPM and Euler make one per step. PNDM as SD v1.5 configures it (`skip_prk_steps`)
    makes one more: its second timestep repeats, because its first step is a Runge-Kutta-like
    warm-up that needs two UNet evaluations (Liu et al., 2022, "Pseudo Numerical Methods for
    Diffusion Models on Manifolds", Sec. 3.3).
    """
    checks.count(num_inference_steps, "num_inference_steps", example=25)
    probe = type(scheduler).from_config(scheduler.config)  # a copy: the pipeline's own keeps its state
    probe.set_timesteps(num_inference_steps)
    return len(probe.timesteps)


@torch.no_grad()
def guided_noise_pred(pipe, latents: torch.Tensor, t, prompt_embeds: torch.Tensor,
                      guidance_scale: float) -> torch.Tensor:
    """The UNet's noise prediction at step t, with classifier-free guidance when guidance_scale > 1.

    With guidance, `prompt_embeds` holds the unconditional half first (see `encode_prompt`), and
    both predictions come from one UNet call on the latents doubled.
    """
    guidance = guidance_scale > 1.0
    # predict the noise for both halves in one UNet call
    latent_model_input = torch.cat([latents] * 2) if guidance else latents
    latent_model_input = pipe.scheduler.scale_model_input(latent_model_input, t)
    noise_pred = pipe.unet(latent_model_input, t, encoder_hidden_states=prompt_embeds).sample
    if guidance:  # eq. 6 of Ho & Salimans (2022), with guidance_scale = 1 + their w
        noise_pred_uncond, noise_pred_text = noise_pred.chunk(2)
        noise_pred = noise_pred_uncond + guidance_scale * (noise_pred_text - noise_pred_uncond)
    return noise_pred


def predicted_original_sample(scheduler, latents: torch.Tensor, noise_pred: torch.Tensor, t) -> torch.Tensor:
    """x_0 = (x_t - sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_bar_t): eq. 4 of Ho et al. (2020) solved for x_0.

    What DDIM's `pred_original_sample` is (Song et al., 2021, eq. 12), for any epsilon-predicting model.
    """
    if scheduler.config.get("prediction_type", "epsilon") != "epsilon":
        raise InvalidInputError(f"predicted_original_sample needs an epsilon-predicting model, "
                         f"not prediction_type={scheduler.config.prediction_type!r}")
    alpha_bar = scheduler.alphas_cumprod.to(latents.device)[int(t)].to(latents.dtype)
    return (latents - (1 - alpha_bar).sqrt() * noise_pred) / alpha_bar.sqrt()


@dataclass
class Trajectory:
    """What `text_to_image` records at each step, on the CPU in fp32."""

    timesteps: list[int] = field(default_factory=list)
    latents: list[torch.Tensor] = field(default_factory=list)  # x_{t-1} after each step
    pred_original_sample: list[torch.Tensor] = field(default_factory=list)  # predicted x_0 at each step


@torch.no_grad()
def text_to_image(pipe, prompt: str | list[str], *, seed: int = 0, num_inference_steps: int = 25,
                  guidance_scale: float = 7.5, negative_prompt: str | list[str] | None = None,
                  height: int | None = None, width: int | None = None,
                  trajectory: Trajectory | None = None) -> torch.Tensor:
    """The whole pipeline by hand; returns images (batch, 3, H, W) in [0, 1], fp32 on the CPU.

    Args:
        pipe: a `StableDiffusionPipeline` (any engine).
        seed: seeds a fresh CPU generator, exactly as `pipe(..., generator=...)` would use it.
        guidance_scale: diffusers' s = 1 + w, with w the weight of eq. 6 of Ho & Salimans (2022); s <= 1
            turns guidance off (the conditional prediction alone, w = 0).
        trajectory: if given, filled with every step's latents and predicted x_0.
    """
    height = native_size(pipe) if height is None else height
    width = native_size(pipe) if width is None else width
    check_call(pipe, height, width, num_inference_steps, guidance_scale)
    guidance = guidance_scale > 1.0
    # 1. text -> prompt_embeds (2 * batch, 77, d), unconditional half first (encode_prompt checks the prompts)
    prompt_embeds = encode_prompt(pipe, prompt, negative_prompt, guidance)
    batch = len(prompt_embeds) // 2 if guidance else len(prompt_embeds)
    # 2. the scheduler's timesteps, e.g. 961, 921, ..., 1 for 25 DDIM steps
    pipe.scheduler.set_timesteps(num_inference_steps, device=pipe.device)
    # 3. x_T from a CPU generator; stochastic samplers (DDPM, Euler ancestral) draw from it too
    generator = torch.Generator("cpu").manual_seed(seed)
    latents = initial_latents(pipe, batch, height, width, generator)
    step_kwargs = {"generator": generator} if "generator" in inspect.signature(pipe.scheduler.step).parameters else {}
    for t in pipe.scheduler.timesteps:
        # 4-5. the noise prediction, with classifier-free guidance
        noise_pred = guided_noise_pred(pipe, latents, t, prompt_embeds, guidance_scale)
        # 6. one scheduler step x_t -> x_{t-1}
        step = pipe.scheduler.step(noise_pred, t, latents, **step_kwargs)
        if trajectory is not None:
            x0 = getattr(step, "pred_original_sample", None)
            if x0 is None:  # PNDM, DPM-Solver...: the epsilon-parameterisation's own estimate of x_0
                x0 = predicted_original_sample(pipe.scheduler, latents, noise_pred, t)
            trajectory.timesteps.append(int(t))
            trajectory.latents.append(step.prev_sample.float().cpu())
            trajectory.pred_original_sample.append(x0.float().cpu())
        latents = step.prev_sample
    # 7. latents -> pixels (fp32, on the CPU)
    return decode(pipe, latents)
