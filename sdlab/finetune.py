"""Fine-tuning: teach a trained text-to-image model a word it has never seen, two ways.

Both methods freeze the model and train a handful of new numbers with the same objective the
model was trained with (the noise-prediction loss of Ho et al., 2020, eq. 14; `sdlab.train`):

- **Textual inversion** (Gal et al., 2022, "An Image is Worth One Word"): add a placeholder
  token such as "<cross>" to the tokenizer, give it a row in the text encoder's token-embedding
  table, and train that row only -- `hidden_size` numbers (64 for the tiny engine, 768 for SD
  v1.5). The generator is untouched, so textual inversion can only find a word for something
  the frozen model can already draw.
- **LoRA** (Hu et al., 2021, "LoRA: Low-Rank Adaptation of Large Language Models"): freeze each
  attention projection W (to_q, to_k, to_v, to_out.0) of the UNet and learn a low-rank update,
      W' = W + (lora_alpha / r) * B A,   A: (r, in), B: (out, r),  B = 0 at the start,
  so r * (in + out) numbers per layer. Done the way diffusers' `train_text_to_image_lora.py`
  does it: `unet.add_adapter(LoraConfig(...))` from `peft`.

The new concept is a shape the shapes world (`sdlab.shapes`) never draws -- a "cross" or a
"diamond" -- and `shape_scores` measures from pixels how much a generated object looks like it:
the IoU of the object's mask with each candidate shape fitted to the object's bounding box.
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from diffusers import DDPMScheduler, StableDiffusionPipeline

from . import checks, shapes, stats
from .errors import InvalidInputError
from .losses import diffusion_loss

LORA_ATTENTION_TARGETS = ("to_q", "to_k", "to_v", "to_out.0")  # diffusers' LoRA training scripts' choice for SD
# ...plus the other linear layers of each transformer block (kohya's sd-scripts adapt these too). A small
# UNet has few attention layers (the tiny one: four transformer blocks), and with the tiny engine v2 the
# attention projections alone left too little room to learn a new shape.
LORA_TARGETS = LORA_ATTENTION_TARGETS + ("proj_in", "proj_out", "ff.net.0.proj", "ff.net.2")
NEW_SHAPES = ("cross", "diamond")


# --------------------------------------------------------------------------- the new concept

def concept_mask(shape: str, cx: float, cy: float, r: float, ry: float | None = None,
                 size: int = shapes.IMAGE_SIZE) -> np.ndarray:
    """Boolean (size, size) mask of any shape -- the world's three or a new one -- in a 2r x 2ry box.

    A cross is two bars as long as the box and a third of it thick; a diamond is a square
    turned 45 degrees. `ry` (default r) lets the box be a rectangle, to fit a drawn object.
    The world's own shapes are `shapes.shape_mask`'s.
    """
    if shape in shapes.SHAPES:
        return shapes.shape_mask(shape, cx, cy, r, ry, size)
    u, v = shapes.box_coords(cx, cy, r, ry, size)
    if shape == "cross":
        return ((np.abs(u) <= 1) & (np.abs(v) <= 1 / 3)) | ((np.abs(u) <= 1 / 3) & (np.abs(v) <= 1))
    if shape == "diamond":
        return np.abs(u) + np.abs(v) <= 1
    raise InvalidInputError(f"unknown shape {shape!r}; choose one of {shapes.SHAPES + NEW_SHAPES}")


def concept_scenes(shape: str, n: int, seed: int = 0, word: str | None = None,
                   sizes: Sequence[str] = shapes.SIZES) -> tuple[np.ndarray, list[str], list[shapes.Thing]]:
    """`n` scenes of one object of a new `shape`, in the world's colours and places, in `sizes`.

    Captions use the world's wordings with `word` (default: the shape's name) as the shape word,
    e.g. "a large red <cross> on the left".

    Returns:
        images (n, 64, 64, 3) uint8, captions, and per scene a `Thing` whose shape field is a
        stand-in ("square") carrying the colour, position and size.
    """
    if shape not in NEW_SHAPES:
        raise InvalidInputError(f"concept_scenes draws new shapes only: {NEW_SHAPES}")
    word = word or shape
    rng = np.random.default_rng(seed)
    images, captions, things = [], [], []
    for _ in range(n):
        thing = shapes.random_thing(rng)
        thing = shapes.Thing(thing.colour, "square", thing.position, sizes[rng.integers(len(sizes))])
        cx, cy, r = shapes.placement(thing, rng)
        image = np.empty((shapes.IMAGE_SIZE, shapes.IMAGE_SIZE, 3), np.uint8)
        image[:] = shapes.BACKGROUND
        image[concept_mask(shape, cx, cy, r)] = shapes.COLOURS[thing.colour]
        images.append(image)
        captions.append(shapes.describe(thing, rng, drop_p=0.0).replace("square", word))
        things.append(thing)
    return np.stack(images), captions, things


def concept_prompt(thing: shapes.Thing, word: str) -> str:
    """The canonical prompt for a thing with `word` as its shape: 'a large red cross on the left'."""
    return thing.prompt().replace(thing.shape, word)


def shape_scores(image: np.ndarray, candidates: Sequence[str] = shapes.SHAPES + NEW_SHAPES) -> dict[str, float]:
    """IoU of the image's largest object with each candidate shape fitted to its bounding box.

    All candidate masks fill the object's bounding box, so the IoU compares outlines only, not
    place or size (the judge of `sdlab.shapes` reads shapes the same way). An image with no
    object scores 0 for every shape.
    """
    image = np.asarray(image)
    parts = [m for m in shapes.components(shapes.foreground(image)) if m.sum() >= 10]
    if not parts:
        return dict.fromkeys(candidates, 0.0)
    return shapes.box_fit_ious(parts[0], candidates, template=concept_mask)


def concept_score(images: np.ndarray, shape: str) -> dict[str, float]:
    """Over a batch of images: mean IoU with `shape` (with the half-width of its 95% Student-t interval), and
    the fraction where `shape` fits best (with its 95% Wilson interval), out of n images."""
    all_scores = [shape_scores(im) for im in images]
    iou, iou_halfwidth = stats.mean_interval([s[shape] for s in all_scores])
    best_fit, low, high = stats.rate([max(s, key=s.get) == shape for s in all_scores])
    return {"iou": iou, "iou_halfwidth": iou_halfwidth, "best_fit": best_fit, "best_fit_low": low,
            "best_fit_high": high, "n": len(all_scores)}


# --------------------------------------------------------------------------- the training loop

def train_steps(pipe: StableDiffusionPipeline, params: Sequence[torch.nn.Parameter], latents: torch.Tensor,
                input_ids: torch.Tensor, *, steps: int, lr: float, batch_size: int = 16, seed: int = 0,
                snr_gamma: float | None = 5.0, after_step: Callable[[], None] | None = None) -> list[float]:
    """Minimise `sdlab.losses.diffusion_loss` over `params` only; returns the loss of every step.

    Args:
        pipe: the pipeline whose (frozen) UNet and text encoder are used.
        params: the parameters to train (an embedding table, or LoRA matrices).
        latents: scaled latents (n, 4, h, w) of the concept's images (`sdlab.latents.encode`).
        input_ids: their captions' token ids (n, 77) (`sdlab.text.tokenize`).
        after_step: called after each optimiser step (textual inversion restores the other rows).
    """
    checks.count(steps, "steps", minimum=0, example=100)
    checks.count(batch_size, "batch_size", example=16)
    checks.number(lr, "lr", low=0, why="a learning rate such as 1e-3")
    if len(latents) != len(input_ids) or not len(latents):
        raise InvalidInputError(f"give one caption per latent: got {len(latents)} latents and {len(input_ids)} "
                                "captions' token ids")
    noise_scheduler = DDPMScheduler.from_config(pipe.scheduler.config)
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    device = pipe.device
    half = pipe.unet.dtype in (torch.float16, torch.bfloat16)  # frozen fp16 weights, fp32 trainable ones
    losses = []
    for _ in range(steps):
        idx = torch.randint(0, len(latents), (batch_size,), generator=generator)
        with torch.autocast(device.type, dtype=pipe.unet.dtype, enabled=half):
            loss = diffusion_loss(pipe.unet, pipe.text_encoder, latents[idx].to(device), input_ids[idx].to(device),
                                  noise_scheduler, generator, snr_gamma)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if after_step is not None:
            after_step()
        losses.append(loss.item())
    return losses


def trainable_parameters(module: torch.nn.Module) -> int:
    """How many numbers of `module` have requires_grad=True."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


# --------------------------------------------------------------------------- textual inversion

def add_placeholder_token(tokenizer, text_encoder, token: str, initializer: str) -> int:
    """Add `token` to the tokenizer and a row for it to the text encoder, copied from `initializer`.

    Returns the new token's id (49408 for the first token added to CLIP's vocabulary).
    """
    if tokenizer.add_tokens(token) != 1:
        raise InvalidInputError(f"{token!r} is already in the tokenizer; "
                         f"choose a new placeholder such as '<{token.strip('<>')}2>'")
    init_ids = tokenizer(initializer, add_special_tokens=False).input_ids
    if len(init_ids) != 1:
        raise InvalidInputError(f"the initializer {initializer!r} is {len(init_ids)} tokens; use a single-token word")
    token_id = tokenizer.convert_tokens_to_ids(token)
    text_encoder.resize_token_embeddings(len(tokenizer), mean_resizing=False)  # the row is set just below
    embeddings = text_encoder.get_input_embeddings().weight
    with torch.no_grad():
        embeddings[token_id] = embeddings[init_ids[0]]
    return token_id


def train_textual_inversion(pipe: StableDiffusionPipeline, token_id: int, latents: torch.Tensor,
                            input_ids: torch.Tensor, *, steps: int = 100, lr: float = 2e-2, **kwargs) -> list[float]:
    """Train the embedding row of `token_id` only; every other weight of the pipeline stays as it was.

    As diffusers' `textual_inversion.py`: the whole embedding table takes gradient steps, and
    after each step every row but the new one is put back (so exactly one row changes).
    """
    if pipe.text_encoder.dtype != torch.float32:
        raise InvalidInputError("train textual inversion with the text encoder in fp32: "
                                "pipe.text_encoder.to(torch.float32)")
    pipe.unet.requires_grad_(False)
    pipe.vae.requires_grad_(False)
    pipe.text_encoder.requires_grad_(False)
    table = pipe.text_encoder.get_input_embeddings().weight
    table.requires_grad_(True)
    original = table.detach().clone()
    keep = torch.ones(len(table), dtype=torch.bool)
    keep[token_id] = False

    def restore_other_rows():
        with torch.no_grad():
            table[keep] = original[keep]

    try:
        return train_steps(pipe, [table], latents, input_ids, steps=steps, lr=lr, after_step=restore_other_rows,
                           **kwargs)
    finally:
        table.requires_grad_(False)


def learned_embedding(pipe: StableDiffusionPipeline, token: str) -> dict[str, torch.Tensor]:
    """{token: (1, hidden_size)}: what diffusers' script saves and `pipe.load_textual_inversion` reads."""
    token_id = pipe.tokenizer.convert_tokens_to_ids(token)
    row = pipe.text_encoder.get_input_embeddings().weight[token_id:token_id + 1]
    return {token: row.detach().float().cpu().clone()}


# --------------------------------------------------------------------------- LoRA

def lora_parameter_count(unet: torch.nn.Module, rank: int, targets: Sequence[str] = LORA_TARGETS) -> int:
    """r * (in + out), summed over the layers that LoRA targets.

    A Linear layer gets A (r x in) and B (out x r). A convolution (SD v1.5's 1x1 `proj_in`) gets
    A as a convolution with r output channels and B as a 1x1 one: r * (in * kh * kw + out).
    Works before and after `add_lora` (peft wraps each target and keeps the layer as `base_layer`).
    """
    total = 0
    for name, module in unet.named_modules():
        if not any(name == t or name.endswith("." + t) for t in targets):
            continue
        base = getattr(module, "base_layer", module)
        if isinstance(base, torch.nn.Linear):
            total += rank * (base.in_features + base.out_features)
        elif isinstance(base, torch.nn.Conv2d):
            kh, kw = base.kernel_size
            total += rank * (base.in_channels * kh * kw + base.out_channels)
    return total


def add_lora(unet: torch.nn.Module, rank: int = 4, lora_alpha: float | None = None,
             targets: Sequence[str] = LORA_TARGETS) -> list[torch.nn.Parameter]:
    """Freeze the UNet and add a LoRA adapter to the `targets` layers; returns the new parameters.

    The adapter starts as a no-op (B = 0) and its matrices are kept in fp32 even when the UNet
    is fp16, as diffusers' `cast_training_params` does.
    """
    from peft import LoraConfig

    checks.count(rank, "rank", example=4)
    unet.requires_grad_(False)
    config = LoraConfig(r=rank, lora_alpha=lora_alpha or rank, init_lora_weights="gaussian",
                        target_modules=list(targets))
    unet.add_adapter(config)
    params = [p for p in unet.parameters() if p.requires_grad]
    for p in params:
        p.data = p.data.float()
    return params


def train_lora(pipe: StableDiffusionPipeline, params: Sequence[torch.nn.Parameter], latents: torch.Tensor,
               input_ids: torch.Tensor, *, steps: int = 100, lr: float = 2e-3, **kwargs) -> list[float]:
    """Train the LoRA matrices from `add_lora`; the text encoder, the VAE and the UNet's own weights stay frozen."""
    pipe.text_encoder.requires_grad_(False)
    pipe.vae.requires_grad_(False)
    return train_steps(pipe, params, latents, input_ids, steps=steps, lr=lr, **kwargs)


@contextlib.contextmanager
def quiet_loader_notices():
    """Silence two notices of diffusers' fine-tune loaders that do not apply to our fine-tunes.

    `load_lora_weights` notes that the file holds no LoRA for the text encoder (we trained only the
    UNet's), and `load_textual_inversion`'s resize of the embedding table notes that the new row
    starts random (the loader writes the learned vector into it at once). Verbosity comes back after.
    """
    from diffusers.utils import logging as d_logging
    from transformers.utils import logging as t_logging

    levels = d_logging.get_verbosity(), t_logging.get_verbosity()
    d_logging.set_verbosity_error()
    t_logging.set_verbosity_error()
    try:
        yield
    finally:
        d_logging.set_verbosity(levels[0])
        t_logging.set_verbosity(levels[1])


def save_lora(pipe: StableDiffusionPipeline, folder: str | Path) -> Path:
    """Save the UNet's LoRA (pytorch_lora_weights.safetensors), for `pipe.load_lora_weights`.

    The keys stay in peft's naming (`lora_A`/`lora_B`), which `load_lora_weights` reads as it is.
    diffusers' training scripts first pass them through `convert_state_dict_to_diffusers`, but
    that renames only the attention projections (to the older `lora.down`/`lora.up`), and a
    file that mixes both namings loads with the attention LoRA silently dropped.
    """
    from peft.utils import get_peft_model_state_dict

    layers = get_peft_model_state_dict(pipe.unet)
    StableDiffusionPipeline.save_lora_weights(str(folder), unet_lora_layers=layers)
    return Path(folder) / "pytorch_lora_weights.safetensors"
