"""The tiny engine's architecture: Stable Diffusion v1.5's component classes at a small size.

Stable Diffusion (Rombach et al., 2022, "High-Resolution Image Synthesis with Latent Diffusion
Models") is four parts: a CLIP text encoder (Radford et al., 2021), a KL-regularised autoencoder
(VAE) with downsampling factor f=8 and 4 latent channels, a UNet with cross-attention on the
text (Ronneberger et al., 2015), and a noise schedule with a sampler (DDPM, Ho et al., 2020;
DDIM, Song et al., 2021). This module builds the same classes -- `CLIPTextModel`,
`AutoencoderKL`, `UNet2DConditionModel`, `DDIMScheduler` -- small enough to train on a laptop
CPU in well under an hour, with SD's layout: a 64x64x3 image becomes 8x8x4 latents, the same
48x compression as SD's 512x512x3 -> 64x64x4.

The trained weights live in `sdlab/assets/tiny-sd/`; `sdlab.train` makes them.
"""
from __future__ import annotations

from pathlib import Path

from diffusers import AutoencoderKL, DDIMScheduler, DDPMScheduler, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

ASSETS = Path(__file__).resolve().parent / "assets"
TOKENIZER_DIR = ASSETS / "clip_tokenizer"
TINY_DIR = ASSETS / "tiny-sd"

IMAGE_SIZE = 64
LATENT_CHANNELS = 4
VAE_SCALE_FACTOR = 8  # 64x64 pixels -> 8x8 latents, as SD's 512x512 -> 64x64
TEXT_HIDDEN = 64  # SD v1.5: 768

# SD v1.5's noise schedule (its scheduler_config.json): "scaled_linear" betas from 0.00085 to
# 0.012 over 1000 training steps, and the UNet predicts the noise (epsilon).
SCHEDULE = {
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "prediction_type": "epsilon",
    "clip_sample": False,
    "set_alpha_to_one": False,
    "steps_offset": 1,
}


def load_tokenizer() -> CLIPTokenizer:
    """The real CLIP BPE tokenizer (49,408 tokens; the same ids as SD v1.5), read offline."""
    return CLIPTokenizer.from_pretrained(TOKENIZER_DIR)


def text_encoder_config() -> CLIPTextConfig:
    """A 3-layer CLIP text transformer; SD v1.5's is 12 layers of width 768."""
    return CLIPTextConfig(
        vocab_size=49408,
        hidden_size=TEXT_HIDDEN,
        intermediate_size=4 * TEXT_HIDDEN,
        num_hidden_layers=3,
        num_attention_heads=4,
        max_position_embeddings=77,
        hidden_act="quick_gelu",  # as OpenAI's CLIP ViT-L/14, SD v1.5's text encoder
        bos_token_id=49406,
        eos_token_id=49407,
        pad_token_id=49407,
        projection_dim=TEXT_HIDDEN,
    )


def build_text_encoder() -> CLIPTextModel:
    return CLIPTextModel(text_encoder_config())


def build_vae() -> AutoencoderKL:
    """An f=8, 4-channel KL autoencoder: three downsamplings, as SD's (which has 128-512 channels).

    Channels grow as resolution falls (16 at 64x64 ... 128 at 8x8): the full-resolution layers
    cost the most time, and colours and shapes are decided at the low ones.

    GroupNorm uses 4 groups, so that even the 16-channel layers normalise 4 channels together.
    With one channel per group (16 groups of 16 channels) the decoder's last normalisation
    rescales each channel on its own, which erases how bright each channel is -- that is, the
    colour -- and every colour comes out washed (we measured it: yellow decoded as orange).
    """
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(16, 32, 64, 128),
        layers_per_block=1,
        latent_channels=LATENT_CHANNELS,
        norm_num_groups=4,
        sample_size=IMAGE_SIZE,
        mid_block_add_attention=False,  # an 8x8 bottleneck needs no self-attention
    )


def build_unet() -> UNet2DConditionModel:
    """A three-level UNet on 8x8 latents that reads the text at the full 8x8 grid and at the 2x2 bottom.

    SD v1.5's UNet has four levels (64, 32, 16, 8 latent pixels for a 512x512 image), with
    blocks that read the text through cross-attention at the first three -- the full 64x64
    latent grid included -- and a middle block at the bottom. This one has three levels (8, 4,
    2 latent pixels). It keeps SD's blocks (ResNet blocks, and transformer blocks with
    self-attention, cross-attention to the 77 prompt embeddings, and a feed-forward layer) and
    reads the text in two places:

    - at the 2x2 bottom, on the way down and twice on the way up. Nothing in a UNet says where a
      pixel is; it finds out from the zero padding at the borders. At 2x2 every cell is a corner
      whose padding tells it its quadrant, so a word such as "left" can be routed to the left
      column there. (A UNet that read the text only at 4x4 ignored "left"/"top": position
      adherence at chance after 900 steps. One with only a 2x2 middle block, SD's own pattern
      at this size, placed objects right 58% of the time after 3,000 steps.)
    - at the full 8x8 grid, once on the way up, as SD's last up blocks do at 64x64: one latent
      cell there is an 8x8-pixel block of the image, so a word's attention map can fall on its
      object's own cells. Trained on the noise-prediction loss alone, they did not (0.96x the
      uniform share); `sdlab.train` adds a grounding loss (`sdlab.grounding`) and they do
      (about 16x; notebook 08 measures it).

    Why so lean: on a laptop CPU a 64x64 image takes 25 UNet calls at batch 2 (with
    guidance), and at batch 2 the time goes to the number of torch operators, not to
    arithmetic (a transformer block is about 53 operators, a ResNet block 15; counted with
    torch.profiler). So one layer per block, none on the way down at 8x8 (the convolution in
    feeds the downsampler and the skip connection; the way up has one ResNet block and one
    transformer there), four transformer blocks in all, 32 channels at 8x8, nothing at 4x4 but
    ResNets, no separate middle block (the 2x2 level is the bottom), and linear rather than
    1x1-convolution projections into the transformers (SD v2's `use_linear_projection`).
    (Engine v4 had a ResNet block on the way down at 8x8 and two of each on the way up: about
    22 % more time per UNet call at batch 2 and at batch 32. Trained the same way, this one follows
    single-object prompts as well -- 99.2 vs 99.4 % all right over 360 prompts -- and two-object
    prompts better: 93.3 vs 76.1 % all 8 attributes right over 180; `python -m sdlab.bench`.)
    """
    return UNet2DConditionModel(
        sample_size=IMAGE_SIZE // VAE_SCALE_FACTOR,
        in_channels=LATENT_CHANNELS,
        out_channels=LATENT_CHANNELS,
        down_block_types=("DownBlock2D", "DownBlock2D", "CrossAttnDownBlock2D"),
        mid_block_type=None,
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D", "CrossAttnUpBlock2D"),
        block_out_channels=(32, 64, 96),
        layers_per_block=(0, 1, 1),  # per down block; each up block has one more
        # diffusers' historical name: in UNet2DConditionModel this is the number of heads
        # (SD v1.5 sets 8); 4 heads of 8 channels at 8x8 and of 24 at 2x2.
        attention_head_dim=4,
        cross_attention_dim=TEXT_HIDDEN,
        use_linear_projection=True,
        norm_num_groups=8,  # 4-12 channels per group: keeps per-channel levels (see build_vae)
    )


def build_scheduler() -> DDIMScheduler:
    """SD v1.5's schedule with the DDIM sampler (Song et al., 2021) for inference."""
    return DDIMScheduler(**SCHEDULE)


def build_noise_scheduler() -> DDPMScheduler:
    """The same schedule as DDPM (Ho et al., 2020), used to add noise during training."""
    return DDPMScheduler(**{k: v for k, v in SCHEDULE.items() if k != "set_alpha_to_one"})
