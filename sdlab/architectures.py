"""What changed after SD v1.5, counted: SDXL, SD3 and Flux built from their published configurations, on meta.

Each model's parts are the configurations published with its weights on the Hugging Face Hub (the `config.json`
files of `unet/` or `transformer/`, `text_encoder*/` and `vae/`), copied here so that nothing is downloaded. On
PyTorch's "meta" device a module has shapes but no storage, so SDXL's 2.6 billion parameters or Flux's 12 cost no
memory, and `sdlab.latents.count_flops` counts one denoiser call there without computing it.

| model                | paper                                                                          |
|----------------------|--------------------------------------------------------------------------------|
| SD v1.5              | Rombach et al., 2022, arXiv:2112.10752                                         |
| SDXL base 1.0        | Podell et al., 2023, "SDXL", arXiv:2307.01952                                   |
| SD3 medium           | Esser et al., 2024, "Scaling Rectified Flow Transformers", arXiv:2403.03206    |
| FLUX.1 [dev]         | Black Forest Labs, 2024 (no paper; MM-DiT + single-stream blocks, guidance-distilled) |

Used by notebook 09's table; `tests/test_architectures.py` checks the counts against the published sizes.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .errors import InvalidInputError
from .latents import count_flops

__all__ = ["MODELS", "Model", "build_denoiser", "build_text_encoders", "count_parameters", "denoiser_flops",
           "summary"]

# --------------------------------------------------------------------------- published configurations

SD15_UNET = {  # stable-diffusion-v1-5/stable-diffusion-v1-5, unet/config.json
    "sample_size": 64, "in_channels": 4, "out_channels": 4, "layers_per_block": 2,
    "block_out_channels": [320, 640, 1280, 1280], "cross_attention_dim": 768, "attention_head_dim": 8,
    "down_block_types": ["CrossAttnDownBlock2D"] * 3 + ["DownBlock2D"],
    "up_block_types": ["UpBlock2D"] + ["CrossAttnUpBlock2D"] * 3,
}
SDXL_UNET = {  # stabilityai/stable-diffusion-xl-base-1.0, unet/config.json
    "sample_size": 128, "in_channels": 4, "out_channels": 4, "layers_per_block": 2,
    "block_out_channels": [320, 640, 1280], "cross_attention_dim": 2048, "attention_head_dim": [5, 10, 20],
    "transformer_layers_per_block": [1, 2, 10], "use_linear_projection": True,
    "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
    "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
    "addition_embed_type": "text_time", "addition_time_embed_dim": 256,
    "projection_class_embeddings_input_dim": 2816,  # the pooled bigG embedding (1280) + 6 size numbers x 256
}
SD3_TRANSFORMER = {  # stabilityai/stable-diffusion-3-medium-diffusers, transformer/config.json
    "sample_size": 128, "patch_size": 2, "in_channels": 16, "out_channels": 16, "num_layers": 24,
    "attention_head_dim": 64, "num_attention_heads": 24, "joint_attention_dim": 4096,
    "caption_projection_dim": 1536, "pooled_projection_dim": 2048, "pos_embed_max_size": 192,
}
FLUX_TRANSFORMER = {  # black-forest-labs/FLUX.1-dev, transformer/config.json
    "patch_size": 1, "in_channels": 64, "num_layers": 19, "num_single_layers": 38, "attention_head_dim": 128,
    "num_attention_heads": 24, "joint_attention_dim": 4096, "pooled_projection_dim": 768, "guidance_embeds": True,
    "axes_dims_rope": [16, 56, 56],
}
CLIP_L = {  # OpenAI CLIP ViT-L/14's text tower: SD v1.5's text encoder, and the first of SDXL, SD3 and Flux
    "vocab_size": 49408, "hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12,
    "num_attention_heads": 12, "max_position_embeddings": 77, "hidden_act": "quick_gelu", "projection_dim": 768,
}
CLIP_BIGG = {  # OpenCLIP ViT-bigG/14's text tower: SDXL's and SD3's second text encoder
    "vocab_size": 49408, "hidden_size": 1280, "intermediate_size": 5120, "num_hidden_layers": 32,
    "num_attention_heads": 20, "max_position_embeddings": 77, "hidden_act": "gelu", "projection_dim": 1280,
}
T5_XXL = {  # google/t5-v1_1-xxl's encoder: SD3's third text encoder and Flux's main one
    "vocab_size": 32128, "d_model": 4096, "d_kv": 64, "d_ff": 10240, "num_layers": 24, "num_heads": 64,
    "feed_forward_proj": "gated-gelu", "relative_attention_num_buckets": 32,
}


@dataclass(frozen=True)
class Model:
    """One model family's published layout: what its denoiser is, what text it reads and the latents it works on."""

    name: str
    denoiser: str                   # the diffusers class
    denoiser_config: dict
    text_encoders: tuple[str, ...]  # names in TEXT_ENCODERS
    text_tokens: int                # token embeddings the denoiser attends to, per prompt
    objective: str
    native_size: int                # image side, pixels
    latent_channels: int
    vae_scaling_factor: float
    vae_shift_factor: float = 0.0
    guidance_calls: int = 2         # denoiser samples per step: 2 with classifier-free guidance, 1 if distilled
    attention: str = ""
    notes: dict = field(default_factory=dict)


TEXT_ENCODERS = {"CLIP ViT-L/14": ("CLIPTextModel", CLIP_L), "OpenCLIP bigG/14": ("CLIPTextModel", CLIP_BIGG),
                 "T5-XXL encoder": ("T5EncoderModel", T5_XXL)}

MODELS = {
    "SD v1.5": Model("SD v1.5", "UNet2DConditionModel", SD15_UNET, ("CLIP ViT-L/14",), 77,
                     "epsilon (DDPM noise prediction)", 512, 4, 0.18215,
                     attention="UNet: self-attention on image positions, cross-attention to 77 CLIP tokens"),
    "SDXL": Model("SDXL", "UNet2DConditionModel", SDXL_UNET, ("CLIP ViT-L/14", "OpenCLIP bigG/14"), 77,
                  "epsilon (DDPM noise prediction)", 1024, 4, 0.13025,
                  attention="UNet: as v1.5, but no attention at the full-size level and 10 transformer layers "
                            "at the smallest; text 768 + 1280 = 2048 wide"),
    "SD3 medium": Model("SD3 medium", "SD3Transformer2DModel", SD3_TRANSFORMER,
                        ("CLIP ViT-L/14", "OpenCLIP bigG/14", "T5-XXL encoder"), 77 + 256,
                        "rectified flow (velocity)", 1024, 16, 1.5305, 0.0609,
                        attention="MM-DiT: joint attention over image and text tokens, separate weights per "
                                  "modality"),
    "FLUX.1 dev": Model("FLUX.1 dev", "FluxTransformer2DModel", FLUX_TRANSFORMER,
                        ("CLIP ViT-L/14", "T5-XXL encoder"), 512, "rectified flow (velocity)", 1024, 16, 0.3611,
                        0.1159, guidance_calls=1,
                        attention="19 MM-DiT blocks, then 38 single-stream blocks (one set of weights for the "
                                  "image and text tokens together); rotary positions"),
}


def _model(name: str) -> Model:
    if name not in MODELS:
        raise InvalidInputError(f"unknown model {name!r}; choose one of {', '.join(map(repr, MODELS))}")
    return MODELS[name]


# --------------------------------------------------------------------------- building and counting

def build_denoiser(name: str) -> torch.nn.Module:
    """The model's UNet or transformer on the meta device: its shapes, no weights, no memory."""
    import diffusers

    model = _model(name)
    with torch.device("meta"):
        return getattr(diffusers, model.denoiser)(**model.denoiser_config)


def build_text_encoders(name: str) -> dict[str, torch.nn.Module]:
    """The model's text encoders on the meta device, by name."""
    import transformers

    encoders = {}
    for encoder in _model(name).text_encoders:
        cls_name, config = TEXT_ENCODERS[encoder]
        config_cls = transformers.CLIPTextConfig if cls_name == "CLIPTextModel" else transformers.T5Config
        with torch.device("meta"):
            encoders[encoder] = getattr(transformers, cls_name)(config_cls(**config))
    return encoders


def count_parameters(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _denoiser_inputs(model: Model, net: torch.nn.Module, batch: int) -> tuple[tuple, dict]:
    """Meta tensors for one call at the native size: the latents, the timestep and the text, as the pipeline passes."""
    side = model.native_size // 8  # every one of these VAEs shrinks each side 8x
    t = torch.full((batch,), 500.0, device="meta")
    if model.denoiser == "UNet2DConditionModel":
        width = model.denoiser_config["cross_attention_dim"]
        kwargs = {"encoder_hidden_states": torch.empty(batch, model.text_tokens, width, device="meta")}
        if model.denoiser_config.get("addition_embed_type") == "text_time":
            kwargs["added_cond_kwargs"] = {"text_embeds": torch.empty(batch, 1280, device="meta"),
                                           "time_ids": torch.empty(batch, 6, device="meta")}
        return (torch.empty(batch, model.latent_channels, side, side, device="meta"), t), kwargs
    cfg = model.denoiser_config
    text = torch.empty(batch, model.text_tokens, cfg["joint_attention_dim"], device="meta")
    pooled = torch.empty(batch, cfg["pooled_projection_dim"], device="meta")
    if model.denoiser == "SD3Transformer2DModel":
        latents = torch.empty(batch, model.latent_channels, side, side, device="meta")
        return (), {"hidden_states": latents, "encoder_hidden_states": text, "pooled_projections": pooled,
                    "timestep": t}
    # Flux packs 2x2 latent pixels into one token of 4 x 16 = 64 channels before its transformer
    tokens = (side // 2) ** 2
    return (), {"hidden_states": torch.empty(batch, tokens, cfg["in_channels"], device="meta"),
                "encoder_hidden_states": text, "pooled_projections": pooled, "timestep": t / 1000,
                "img_ids": torch.zeros(tokens, 3, device="meta"),
                "txt_ids": torch.zeros(model.text_tokens, 3, device="meta"),
                "guidance": torch.full((batch,), 3.5, device="meta")}


def denoiser_flops(name: str, batch: int = 1) -> int:
    """FLOPs of one denoiser call on `batch` latents at the model's native size, counted on the meta device."""
    model = _model(name)
    net = build_denoiser(name)
    args, kwargs = _denoiser_inputs(model, net, batch)
    return count_flops(net, *args, **kwargs)


def image_tokens(name: str) -> int:
    """Positions the denoiser's attention sees at the native size: the UNet's largest attended grid, or patches."""
    model = _model(name)
    side = model.native_size // 8
    if model.denoiser == "UNet2DConditionModel":
        first_attended = next(i for i, b in enumerate(model.denoiser_config["down_block_types"]) if "CrossAttn" in b)
        return (side // 2 ** first_attended) ** 2
    return (side // 2) ** 2  # SD3: 2x2 patches; Flux: 2x2 latent pixels packed into one token


def summary(name: str, flops: bool = True) -> dict:
    """One row of notebook 09's table: parameters, text encoders, latents, tokens, FLOPs per step."""
    model = _model(name)
    encoders = build_text_encoders(name)
    row = {"model": name, "denoiser": model.denoiser, "denoiser_params": count_parameters(build_denoiser(name)),
           "text_encoders": {k: count_parameters(v) for k, v in encoders.items()},
           "text_tokens": model.text_tokens, "objective": model.objective, "native_size": model.native_size,
           "latent": (model.latent_channels, model.native_size // 8, model.native_size // 8),
           "image_tokens": image_tokens(name), "guidance_calls": model.guidance_calls, "attention": model.attention}
    if flops:
        row["tflops_per_step"] = denoiser_flops(name, batch=model.guidance_calls) / 1e12
    return row
