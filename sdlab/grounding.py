"""Token-level grounding: teaching cross-attention to put an object's words on the object.

Trained on LAION, Stable Diffusion's cross-attention maps place each word on the pixels it
describes (Hertz et al., 2022) without being told to. The tiny engine, trained on 16,000
captioned shapes, did not: with the text read at its full 8x8 latent grid, its words' maps were
as flat as uniform attention (0.96x the uniform share inside the object, v3 without this
loss). Under CLIP's causal attention the end token and every padding token after it have seen
the whole caption, so the UNet could read everything from them and had no reason to look at one
word in particular.

TokenCompose (Wang et al., 2024, "TokenCompose: Text-to-Image Diffusion with Token-level
Supervision", arXiv:2312.03626, eq. 3) adds a grounding term to the diffusion loss (its token loss;
the paper's pixel-level term is not used here). For each supervised token i
with object mask B_i, A_i (one value per latent pixel u) is the cross-attention probability
pixel u gives token i, averaged over heads and the layers at one grid:

    L_token = mean_i (1 - sum_{u in B_i} A_{i,u} / sum_u A_{i,u})^2

We supervise the words that name an object (its size, colour and shape words) with that
object's mask, at the layers on the latents' own grid (8x8). The position words and the end
token are left free, so what they do is still learned, not taught. Masks are soft: each latent
cell counts with the fraction of its 8x8 pixels the object covers.

    maps = GroundingMaps(grid=(8, 8))
    with attention.capture_cross_attention(unet, maps):
        noise_pred = unet(noisy_latents, t, encoder_hidden_states=prompt_embeds).sample
    loss = loss + weight * token_loss(maps.mean(), *object_token_masks(tokenizer, captions, scenes))
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from . import shapes
from .errors import InvalidInputError

OBJECT_WORDS = ("size", "colour", "shape")  # the words that name an object (supervised)


def cell_coverage(mask: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """Fraction (grid) of each latent cell that a pixel mask (H, W) covers (area average)."""
    h, w = mask.shape
    gh, gw = grid
    if h % gh or w % gw:
        raise InvalidInputError(f"a {h}x{w} mask does not split into a {gh}x{gw} grid of equal cells")
    return mask.reshape(gh, h // gh, gw, w // gw).mean(axis=(1, 3)).astype(np.float32)


def object_words(tokenizer, caption: str, things: Sequence[shapes.Thing],
                 kinds: Sequence[str] = OBJECT_WORDS) -> list[dict[str, int]]:
    """For each object, {kind: token position (0 = BOS)} of its `kinds` words in `caption`.

    Two-object captions name the first object before the word "and" and the second after it
    (`shapes.describe_pair`), so two objects of one colour each keep their own colour word; a
    word left out of the caption (a dropped size) has no position.
    """
    ids = tokenizer(caption, truncation=True, max_length=tokenizer.model_max_length).input_ids
    bounds = [0, len(ids)]
    if len(things) == 2:
        bounds = [0, ids.index(_single_token(tokenizer, "and")), len(ids)]
    found = []
    for k, thing in enumerate(things):
        segment = range(bounds[k], bounds[k + 1])
        first = {kind: next((j for j in segment if ids[j] == _single_token(tokenizer, getattr(thing, kind))), None)
                 for kind in kinds}  # the first place each word stands in this object's part of the caption
        found.append({kind: j for kind, j in first.items() if j is not None})
    return found


def object_word_positions(tokenizer, caption: str, things: Sequence[shapes.Thing]) -> list[list[int]]:
    """For each object, the token positions of its size, colour and shape words (`object_words`)."""
    return [sorted(words.values()) for words in object_words(tokenizer, caption, things)]


def object_token_masks(tokenizer, captions: Sequence[str], scenes: Sequence[Sequence[shapes.Thing]],
                       masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token target masks for a batch: (batch, 77, h*w) soft masks and (batch, 77) bool "supervised".

    Args:
        captions: the batch's captions ("" for a dropped caption: nothing supervised).
        scenes: each caption's objects, in the order the caption names them.
        masks: (batch, 2, h, w) each object's cell coverage (`cell_coverage`; zeros for no object).
    """
    batch, _, h, w = masks.shape
    length = tokenizer.model_max_length
    target = torch.zeros(batch, length, h * w)
    supervised = torch.zeros(batch, length, dtype=torch.bool)
    for b, (caption, things) in enumerate(zip(captions, scenes, strict=True)):
        if not caption:
            continue
        for k, positions in enumerate(object_word_positions(tokenizer, caption, things)):
            for j in positions:
                target[b, j] = masks[b, k].flatten()
                supervised[b, j] = True
    return target, supervised


def token_loss(maps: torch.Tensor, target: torch.Tensor, supervised: torch.Tensor) -> torch.Tensor:
    """TokenCompose's L_token (eq. 3): mean over supervised tokens of (1 - mass inside the mask)^2.

    Args:
        maps: (batch, h*w, 77) attention probabilities (rows sum to 1 over the tokens).
        target: (batch, 77, h*w) soft masks; supervised: (batch, 77) which tokens count.
    """
    if not supervised.any():
        return maps.sum() * 0.0
    per_token = maps.transpose(1, 2)  # (batch, 77, h*w): token i's map
    inside = (per_token * target.to(maps)).sum(-1) / per_token.sum(-1).clamp_min(1e-8)
    return ((1 - inside[supervised]) ** 2).mean()


class GroundingMaps:
    """Collects, with gradients, the cross-attention probabilities of the layers on one grid.

    An `AttentionStore` for training: `attention.StoreCrossAttnProcessor` hands it each
    cross-attention layer's probabilities; those whose queries lie on `grid` are kept, averaged
    over heads (nothing is detached, so the grounding loss trains the queries and keys).
    """

    def __init__(self, grid: tuple[int, int]):
        self.grid = tuple(grid)
        self.num_layers = 0
        self.layers: list[torch.Tensor] = []

    def reset(self) -> None:
        self.layers = []

    def add(self, attention_probs: torch.Tensor, heads: int) -> None:
        bh, queries, tokens = attention_probs.shape
        if queries == self.grid[0] * self.grid[1]:
            self.layers.append(attention_probs.reshape(bh // heads, heads, queries, tokens).mean(1))

    def mean(self) -> torch.Tensor:
        """(batch, h*w, 77): the kept layers' maps averaged; empties the store for the next step."""
        if not self.layers:
            raise InvalidInputError(f"no cross-attention layer works on a {self.grid} grid")
        maps = torch.stack(self.layers).mean(0)
        self.layers = []
        return maps


def _single_token(tokenizer, word: str) -> int:
    ids = tokenizer(word, add_special_tokens=False).input_ids
    if len(ids) != 1:
        raise InvalidInputError(f"{word!r} is {len(ids)} CLIP tokens; grounding needs one token per word")
    return ids[0]
