"""Cross-attention maps: which pixels each prompt token speaks to, captured from the real UNet.

Every transformer block in Stable Diffusion's UNet has two attention layers (Rombach et al.,
2022, Sec. 3.3): `attn1`, self-attention of the image on itself, and `attn2`, cross-attention
from the image to the text:

    Attention(Q, K, V) = softmax(Q K^T / sqrt(d)) V,
    Q = W_Q phi(z_t)        one row per latent pixel          (to_q)
    K = W_K tau(y)          one row per prompt token (77)     (to_k)
    V = W_V tau(y)                                            (to_v)

phi(z_t) are the UNet's image features and tau(y) = `prompt_embeds`. Row i of the
attention probabilities softmax(Q K^T / sqrt(d)) says how latent pixel i spreads its attention
over the 77 tokens; column j, reshaped to (h, w), is token j's *attention map*. Hertz et al.
(2022, "Prompt-to-Prompt Image Editing with Cross Attention Control") showed that these maps
place each word on the pixels it describes.

diffusers computes attention in swappable *attention processors*. `StoreCrossAttnProcessor`
is diffusers' plain `AttnProcessor` that also records the probabilities of cross-attention
layers into an `AttentionStore`; `capture_cross_attention` installs it on a UNet with
`unet.set_attn_processor` and puts the original processors back afterwards:

    store = AttentionStore(map_size=(8, 8))   # the latents' (h, w), or smaller with the same aspect
    with capture_cross_attention(pipe.unet, store):
        image = pipe("a large red circle on the left", ...).images[0]
    maps = store.token_maps()            # (steps, batch, 77, h, w), averaged over heads and layers
"""
from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from diffusers.models.attention_processor import Attention, AttnProcessor

from . import grounding, shapes
from .engines import generate
from .errors import InvalidInputError
from .images import to_uint8
from .text import token_position


class AttentionStore:
    """Cross-attention probabilities per denoising step, averaged over heads and layers.

    Each cross-attention layer's map (h_l, w_l) is resized (bilinear) to `map_size` before
    averaging, so layers at different resolutions (SD v1.5: 64, 32, 16 and 8 latent pixels;
    the tiny UNet: 8 and 2) add up. With `layer_size`, only the layers at that grid are kept
    (e.g. the latents' own size: SD v1.5's 64x64 layers, the tiny UNet's 8x8 ones), and their
    maps are not resampled when `map_size` is the same. A denoising step is complete when every
    cross-attention layer of the UNet has been called once.

    Args:
        map_size: (h, w) of the stored maps, with the latents' aspect ratio: the latents' own
            size (8x8 for the tiny engine), or smaller to save memory (SD v1.5's latents are
            64x64; 16x16 maps keep 16 times less).
        layer_size: (h, w) of the only layers to record, or None for all of them.
    """

    def __init__(self, map_size: tuple[int, int], layer_size: tuple[int, int] | None = None):
        self.map_size = tuple(int(s) for s in map_size)
        self.layer_size = tuple(int(s) for s in layer_size) if layer_size is not None else None
        self.num_layers = 0  # set by capture_cross_attention
        self.layer_sizes: set[tuple[int, int]] = set()  # the grids of the layers that were called
        self.steps: list[torch.Tensor] = []  # each (batch, 77, h, w), on the CPU in fp32
        self._sum: torch.Tensor | None = None
        self._calls = self._kept = 0

    def reset(self) -> None:
        self.steps, self._sum, self._calls, self._kept = [], None, 0, 0

    def add(self, attention_probs: torch.Tensor, heads: int) -> None:
        """Record one layer's probabilities (batch * heads, h_l * w_l, tokens)."""
        bh, queries, tokens = attention_probs.shape
        h, w = self.map_size
        scale = math.sqrt(h * w / queries)
        hl, wl = round(h / scale), round(w / scale)
        if hl * wl != queries:
            raise InvalidInputError(f"cannot lay {queries} attention queries out on a grid with the latents' aspect "
                             f"{h}x{w}; use a height and width divisible by 64")
        self.layer_sizes.add((hl, wl))
        self._calls += 1
        if self.layer_size is None or (hl, wl) == self.layer_size:
            probs = attention_probs.detach().float().reshape(bh // heads, heads, hl, wl, tokens).mean(1)
            probs = probs.permute(0, 3, 1, 2)  # (batch, tokens, h_l, w_l)
            if (hl, wl) != (h, w):
                probs = F.interpolate(probs, size=(h, w), mode="bilinear", align_corners=False)
            probs = probs.cpu()
            self._sum = probs if self._sum is None else self._sum + probs
            self._kept += 1
        if self.num_layers and self._calls % self.num_layers == 0:
            if self._sum is None:
                raise InvalidInputError(f"no cross-attention layer works on a {self.layer_size} grid; this UNet's "
                                 f"are {sorted(self.layer_sizes)}")
            self.steps.append(self._sum / self._kept)
            self._sum, self._kept = None, 0

    def token_maps(self) -> torch.Tensor:
        """All recorded steps as one tensor (steps, batch, tokens, h, w)."""
        if not self.steps:
            raise InvalidInputError("nothing recorded: run the pipeline inside `capture_cross_attention`")
        return torch.stack(self.steps)


class StoreCrossAttnProcessor(AttnProcessor):
    """diffusers' `AttnProcessor` (attention written out, no fused kernel) that records the
    cross-attention probabilities softmax(Q K^T / sqrt(d)) into an `AttentionStore`.

    Self-attention (no `encoder_hidden_states`) is computed but not recorded.
    """

    def __init__(self, store: AttentionStore):
        super().__init__()
        self.store = store

    def __call__(self, attn: Attention, hidden_states: torch.Tensor, encoder_hidden_states: torch.Tensor | None = None,
                 attention_mask: torch.Tensor | None = None, temb: torch.Tensor | None = None,
                 *args, **kwargs) -> torch.Tensor:
        is_cross = encoder_hidden_states is not None
        residual = hidden_states
        if attn.spatial_norm is not None:
            hidden_states = attn.spatial_norm(hidden_states, temb)
        input_ndim = hidden_states.ndim
        if input_ndim == 4:
            batch_size, channel, height, width = hidden_states.shape
            hidden_states = hidden_states.view(batch_size, channel, height * width).transpose(1, 2)
        keys_from = hidden_states if encoder_hidden_states is None else encoder_hidden_states
        batch_size, sequence_length, _ = keys_from.shape
        attention_mask = attn.prepare_attention_mask(attention_mask, sequence_length, batch_size)
        if attn.group_norm is not None:
            hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)
        # 1. queries from the image, keys and values from the text (or the image, for self-attention)
        query = attn.to_q(hidden_states)  # (batch, h*w, inner_dim)
        if encoder_hidden_states is None:
            encoder_hidden_states = hidden_states
        elif attn.norm_cross:
            encoder_hidden_states = attn.norm_encoder_hidden_states(encoder_hidden_states)
        key = attn.to_k(encoder_hidden_states)  # (batch, 77, inner_dim)
        value = attn.to_v(encoder_hidden_states)
        query, key, value = attn.head_to_batch_dim(query), attn.head_to_batch_dim(key), attn.head_to_batch_dim(value)
        # 2. softmax(Q K^T / sqrt(d)): (batch * heads, h*w, 77), each row sums to 1 over the tokens
        attention_probs = attn.get_attention_scores(query, key, attention_mask)
        if is_cross:
            self.store.add(attention_probs, attn.heads)
        # 3. the weighted sum of values, then the output projection
        hidden_states = attn.batch_to_head_dim(torch.bmm(attention_probs, value))
        hidden_states = attn.to_out[1](attn.to_out[0](hidden_states))
        if input_ndim == 4:
            hidden_states = hidden_states.transpose(-1, -2).reshape(batch_size, channel, height, width)
        if attn.residual_connection:
            hidden_states = hidden_states + residual
        return hidden_states / attn.rescale_output_factor


def cross_attention_names(unet) -> list[str]:
    """Names of the UNet's cross-attention processors (the `attn2` layers)."""
    return [name for name in unet.attn_processors if name.endswith("attn2.processor")]


@contextlib.contextmanager
def capture_cross_attention(unet, store: AttentionStore) -> Iterator[AttentionStore]:
    """Record cross-attention into `store` while inside the block; restores the processors after.

    Args:
        unet: a `UNet2DConditionModel` (e.g. `pipe.unet`).
        store: where the maps go; its `num_layers` is set to the UNet's cross-attention count.
    """
    original = unet.attn_processors
    names = cross_attention_names(unet)
    if not names:
        raise InvalidInputError("this UNet has no cross-attention (attn2) layers to record")
    store.num_layers = len(names)
    store.reset()
    processor = StoreCrossAttnProcessor(store)
    unet.set_attn_processor({name: processor if name in names else proc for name, proc in original.items()})
    try:
        yield store
    finally:
        unet.set_attn_processor(original)


def upsample(token_map: torch.Tensor, size: tuple[int, int], mode: str = "nearest") -> torch.Tensor:
    """Resize one map (h, w) to `size`, normalised to sum to 1 over the pixels.

    "nearest" (the default) spreads each latent cell's attention evenly over the pixels it
    covers (8x8 of them in SD's f=8 layout): what the layer saw, not smoothed. "bilinear"
    makes softer pictures but moves mass across cell borders.
    """
    kwargs = {} if mode == "nearest" else {"align_corners": False}
    m = F.interpolate(token_map[None, None].float(), size=size, mode=mode, **kwargs)[0, 0]
    m = m.clamp_min(0)
    return m / m.sum().clamp_min(1e-12)


def mass_inside(token_map: torch.Tensor, mask: np.ndarray | torch.Tensor) -> float:
    """Fraction of a token's attention mass that falls inside a pixel mask (H, W).

    The map is resized to the mask's size (nearest: each cell's mass spread over its pixels)
    and normalised to sum to 1; compare the result with the mask's area fraction
    `mask.mean()`, which is what attention spread evenly would give (see `uniform_ratio`).
    """
    mask = torch.as_tensor(np.asarray(mask), dtype=torch.bool)
    if token_map.ndim != 2 or mask.ndim != 2:
        raise InvalidInputError(f"give one word's map (h, w) and one pixel mask (H, W), got {tuple(token_map.shape)} "
                                f"and {tuple(mask.shape)}; for a word k of maps (77, h, w) pass maps[k]")
    return float(upsample(token_map, tuple(mask.shape))[mask].sum())


def uniform_ratio(token_map: torch.Tensor, mask: np.ndarray | torch.Tensor) -> float:
    """`mass_inside` divided by the mask's area fraction: 1.0 is what uniform attention gives.

    2.0 means the token puts twice as much of its attention on the region as spreading it
    evenly over the image would.
    """
    area = float(np.asarray(mask, dtype=bool).mean())
    if area == 0:
        raise InvalidInputError("the mask is empty: there is no region to measure attention on")
    return mass_inside(token_map, mask) / area


WORD_KINDS = ("colour", "shape", "position", "size", "end")


def word_tokens(tokenizer, thing: shapes.Thing, prompt: str | None = None) -> dict[str, int]:
    """Token positions of `thing`'s four attribute words in its prompt, and of the end token.

    Args:
        thing: the object the prompt describes; its canonical prompt by default.
    """
    prompt = prompt or thing.prompt()
    index = {kind: token_position(tokenizer, prompt, getattr(thing, kind)) for kind in shapes.ATTRIBUTES}
    index["end"] = tokenizer(prompt).input_ids.index(tokenizer.eos_token_id)
    return index


@torch.no_grad()
def generate_with_maps(pipe, prompts: list[str], seed: int = 0, batch_size: int = 40,
                       **generate_kwargs) -> tuple[np.ndarray, torch.Tensor]:
    """Generate `prompts` and keep each one's word maps from the layers at the latents' own grid.

    Batch k of `batch_size` prompts uses noise seed `seed + k`. Maps are averaged over heads, those
    layers and the denoising steps, from the conditional half of the guidance batch.

    Returns:
        images uint8 (n, H, W, 3) and maps (n, 77, h, w).
    """
    grid = (pipe.unet.config.sample_size,) * 2  # the latents' own (h, w): 8x8 tiny, 64x64 SD v1.5
    images, maps = [], []
    for k, i in enumerate(range(0, len(prompts), batch_size)):
        chunk = prompts[i:i + batch_size]
        store = AttentionStore(grid, layer_size=grid)
        with capture_cross_attention(pipe.unet, store):
            out = generate(pipe, chunk, seed=seed + k, output_type="np", **generate_kwargs).images
        maps.append(store.token_maps()[:, -len(chunk):].mean(0))  # conditional half, mean over steps
        images.append(to_uint8(out))
    return np.concatenate(images), torch.cat(maps)


def object_attention(pipe, things: list[shapes.Thing], seed: int = 0, batch_size: int = 40,
                     **generate_kwargs) -> dict:
    """How strongly each word of single-object prompts attends to its object, against uniform attention.

    For every thing, its canonical prompt is generated with the cross-attention of the layers
    at the latents' own grid recorded (8x8 in the tiny UNet, 64x64 in SD v1.5), averaged over
    heads, those layers and the denoising steps (`generate_with_maps`). The object's mask is
    what the shapes world's judge calls foreground in the generated image; for each word kind
    (colour, shape, position, size, and the end token) the ratio is `uniform_ratio(word_map, mask)`.

    Args:
        things: the objects, one prompt each.
        seed: the first batch's noise seed; batch k uses seed + k.

    Returns:
        {"ratios": {kind: array over the images that show an object}, "kept": the things measured,
         "images": uint8 (n, H, W, 3) for all things, "maps": (n, 77, h, w) word maps}.
    """
    images, maps = generate_with_maps(pipe, [t.prompt() for t in things], seed, batch_size, **generate_kwargs)
    ratios = {kind: [] for kind in WORD_KINDS}
    kept = []
    for thing, image, tmap in zip(things, images, maps, strict=True):
        mask = shapes.foreground(image)
        if not mask.any():
            continue
        kept.append(thing)
        for kind, j in word_tokens(pipe.tokenizer, thing).items():
            ratios[kind].append(uniform_ratio(tmap[j], mask))
    return {"ratios": {k: np.array(v) for k, v in ratios.items()}, "kept": kept, "images": images, "maps": maps}


def side_mask(image: np.ndarray, position: str) -> np.ndarray:
    """The foreground pixels in the half of the image where an object at `position` stands
    (two-object scenes put their objects on opposite sides: left/right or top/bottom)."""
    h, w = image.shape[:2]
    half = np.zeros((h, w), bool)
    region = {"left": np.s_[:, :w // 2], "right": np.s_[:, w // 2:], "top": np.s_[:h // 2], "bottom": np.s_[h // 2:]}
    if position not in region:
        raise InvalidInputError(f"two-object scenes stand left/right or top/bottom, not {position!r}")
    half[region[position]] = True
    return shapes.foreground(image) & half


BINDING_KINDS = ("colour", "shape")


def pair_attention(pipe, pairs: list[tuple[shapes.Thing, shapes.Thing]], seed: int = 0, batch_size: int = 40,
                   **generate_kwargs) -> dict:
    """Do two objects' words attend to *their own* object? The binding test of the maps.

    For prompts "<first> and <second>" (canonical wordings), each object's colour and shape
    words' `uniform_ratio` on its own object (the foreground on its side of the image) and on
    the other object. Maps that only separate objects from the background give equal values;
    maps that bind words to objects give own > other.

    Returns:
        {"own": {kind: array}, "other": {kind: array}} over the objects whose both sides show foreground.
    """
    prompts = [f"{a.prompt()} and {b.prompt()}" for a, b in pairs]
    images, maps = generate_with_maps(pipe, prompts, seed, batch_size, **generate_kwargs)
    own = {kind: [] for kind in BINDING_KINDS}
    other = {kind: [] for kind in BINDING_KINDS}
    for (a, b), prompt, image, tmap in zip(pairs, prompts, images, maps, strict=True):
        masks = side_mask(image, a.position), side_mask(image, b.position)
        if not (masks[0].any() and masks[1].any()):
            continue
        for k, words in enumerate(grounding.object_words(pipe.tokenizer, prompt, (a, b), BINDING_KINDS)):
            for kind, j in words.items():
                own[kind].append(uniform_ratio(tmap[j], masks[k]))
                other[kind].append(uniform_ratio(tmap[j], masks[1 - k]))
    return {"own": {k: np.array(v) for k, v in own.items()}, "other": {k: np.array(v) for k, v in other.items()}}
