"""A second engine for tests: Stable Diffusion v1.5's classes and configs at a small size, random weights.

The notebooks must not assume the tiny engine's size, text width, scheduler or step count. This
builds a pipeline that differs from the tiny engine in each of those while keeping SD v1.5's
structure: its UNet pattern (four levels, cross-attention at the first three, layers_per_block
2), its VAE layout (f=8, 4 channels, scaling factor 0.18215), a CLIP text encoder of another
width, SD v1.5's own scheduler class and config (PNDM with `skip_prk_steps`, which makes one UNet
call more than the number of steps), 128x128 images, and a filled safety-checker slot
(`StableDiffusionSafetyChecker` with its CLIP image processor). The weights are random: images are
noise, and only claims about structure hold on it. Saved with `save_pretrained`, it loads with
`sdlab.load_pipeline(folder)`, or for a whole run of the series with `SDLAB_ENGINE=folder`.

    python -m sdlab.sdshaped /tmp/sd-shaped      # builds and saves it in a few seconds
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch
from diffusers import AutoencoderKL, PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel
from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker
from transformers import CLIPConfig, CLIPImageProcessor, CLIPTextModel

from . import gpubench, tiny

# SD v1.5's scheduler/scheduler_config.json
SD15_SCHEDULER = {"num_train_timesteps": 1000, "beta_start": 0.00085, "beta_end": 0.012,
                  "beta_schedule": "scaled_linear", "set_alpha_to_one": False, "skip_prk_steps": True,
                  "steps_offset": 1, "clip_sample": False}
IMAGE_SIZE = 128   # latents 16x16: neither the tiny engine's 8x8 nor SD v1.5's 64x64
TEXT_HIDDEN = 32   # neither the tiny engine's 64 nor SD v1.5's 768


def build(seed: int = 0) -> StableDiffusionPipeline:
    """The SD-shaped pipeline with random weights (fp32, CPU)."""
    torch.manual_seed(seed)
    unet_cfg = gpubench.sd15_unet_config(width=16, cross_attention_dim=TEXT_HIDDEN)
    unet_cfg.update(sample_size=IMAGE_SIZE // 8, attention_head_dim=2, norm_num_groups=8)
    vae_cfg = gpubench.sd15_vae_config(width=8)
    vae_cfg.update(sample_size=IMAGE_SIZE, layers_per_block=1, norm_num_groups=4)
    checker_cfg = CLIPConfig(
        text_config={"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2},
        vision_config={"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
                           "image_size": 32, "patch_size": 8},
        projection_dim=16)
    return StableDiffusionPipeline(
        vae=AutoencoderKL(**vae_cfg),
        text_encoder=CLIPTextModel(gpubench.sd15_text_config(TEXT_HIDDEN, layers=2)),
        tokenizer=tiny.load_tokenizer(),
        unet=UNet2DConditionModel(**unet_cfg),
        scheduler=PNDMScheduler.from_config(SD15_SCHEDULER),  # keeps clip_sample: false in its config, as SD's
        safety_checker=StableDiffusionSafetyChecker(checker_cfg),
        feature_extractor=CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}),
        requires_safety_checker=True,
    )


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m sdlab.sdshaped", description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, help="where to save it (save_pretrained)")
    args = parser.parse_args(argv)
    build().save_pretrained(args.folder)
    print(f"SD-shaped pipeline with random weights saved to {args.folder}; "
          f"run the series on it with SDLAB_ENGINE={args.folder}")


if __name__ == "__main__":
    main()
