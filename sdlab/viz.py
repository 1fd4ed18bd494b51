"""Figures for the notebooks: image grids, latent channels, frame strips. Matplotlib and PIL only.

Every figure has a title; axes that carry a quantity are labelled. Labels are ASCII.
"""
from __future__ import annotations

import io
import textwrap
from typing import Sequence

import numpy as np
import torch
from PIL import Image

ImageLike = Image.Image | np.ndarray | torch.Tensor


def to_pil(images) -> list[Image.Image]:
    """PIL images from a PIL image or list, a uint8/float array (b, H, W, 3), or a tensor (b, 3, H, W) in [0, 1]."""
    if isinstance(images, Image.Image):
        return [images]
    if isinstance(images, (list, tuple)):
        return [im for x in images for im in to_pil(x)]
    if isinstance(images, torch.Tensor):
        images = images.detach().float().cpu()
        if images.ndim == 3:
            images = images[None]
        images = images.permute(0, 2, 3, 1).numpy()
    arr = np.asarray(images)
    if arr.ndim == 3:
        arr = arr[None]
    if arr.dtype != np.uint8:
        arr = (np.clip(arr, 0, 1) * 255).round().astype(np.uint8)
    return [Image.fromarray(a) for a in arr]


def image_grid(images: np.ndarray, cols: int, gap: int = 2) -> np.ndarray:
    """Tile uint8 images (n, H, W, 3) into one (rows*H, cols*W, 3) picture with white gaps, row by row."""
    images = np.asarray(images)
    n, h, w, c = images.shape
    rows = -(-n // cols)
    grid = np.full((rows * (h + gap) - gap, cols * (w + gap) - gap, c), 255, dtype=images.dtype)
    for i, image in enumerate(images):
        r, k = divmod(i, cols)
        grid[r * (h + gap):r * (h + gap) + h, k * (w + gap):k * (w + gap) + w] = image
    return grid


def plot_rates(ax, steps: Sequence[float], rates: dict[str, Sequence[tuple[float, float, float]]],
               chance: dict[str, float] | None = None):
    """Rates with their 95% intervals as error bars, one line per key, and dotted chance levels.

    Args:
        rates: per key, one (rate, low, high) per step, as `stats.rate` returns.
        chance: per key, the rate guessing would give (drawn in the same colour).
    """
    for k, (name, values) in enumerate(rates.items()):
        r, lo, hi = (np.array(v) for v in zip(*values))
        ax.errorbar(steps, r, yerr=[r - lo, hi - r], marker="o", ms=4, capsize=3, color=f"C{k}", label=name)
        if chance and name in chance:
            ax.axhline(chance[name], color=f"C{k}", ls=":", lw=1)
    ax.set_ylim(-0.03, 1.03)
    return ax


def upscale(image: Image.Image, min_side: int = 256) -> Image.Image:
    """Enlarge small images with nearest-neighbour (64x64 -> 256x256) so pixels stay crisp."""
    factor = max(1, -(-min_side // min(image.size)))
    return image if factor == 1 else image.resize((image.width * factor, image.height * factor), Image.NEAREST)


def png_bytes(image: ImageLike, min_side: int = 256) -> bytes:
    """PNG bytes of one image, enlarged for display: what `widgets.Image` shows."""
    buf = io.BytesIO()
    upscale(to_pil(image)[0], min_side).save(buf, format="PNG")
    return buf.getvalue()


def show_images(images, titles: Sequence[str] | None = None, suptitle: str | None = None, cols: int | None = None,
                size: float = 2.2, wrap: int = 26):
    """A grid of images with a title each; returns the matplotlib figure."""
    import matplotlib.pyplot as plt

    pils = to_pil(images)
    cols = cols or min(len(pils), 8)
    rows = -(-len(pils) // cols)
    wrapped = [textwrap.fill(str(t), wrap) for t in titles] if titles is not None else []
    title_lines = max((w.count("\n") + 1 for w in wrapped), default=0)
    aspect = max(im.height / im.width for im in pils)  # wide frames (several panels side by side) need short rows
    row_height = size * aspect + 0.15 + 0.14 * title_lines  # 8-point titles: about 0.14 inch a line
    fig, axes = plt.subplots(rows, cols, figsize=(size * cols, row_height * rows + (0.3 if suptitle else 0)),
                             squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for i, (ax, im) in enumerate(zip(axes.ravel(), pils)):
        ax.imshow(im, interpolation="nearest")
        if i < len(wrapped):
            ax.set_title(wrapped[i], fontsize=8)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def show_latent_channels(latents: torch.Tensor, title: str = "The 4 latent channels", cmap: str = "RdBu_r"):
    """One panel per latent channel of one latent (4, h, w) or (1, 4, h, w), on a shared symmetric scale."""
    import matplotlib.pyplot as plt

    lat = latents.detach().float().cpu()
    lat = lat[0] if lat.ndim == 4 else lat
    vmax = float(lat.abs().max()) or 1.0
    fig, axes = plt.subplots(1, lat.shape[0], figsize=(2.2 * lat.shape[0] + 0.8, 2.6))
    for c, ax in enumerate(np.atleast_1d(axes)):
        im = ax.imshow(lat[c], cmap=cmap, vmin=-vmax, vmax=vmax, interpolation="nearest")
        ax.set_title(f"channel {c}", fontsize=9)
        ax.set_xticks([]), ax.set_yticks([])
    fig.colorbar(im, ax=list(np.atleast_1d(axes)), shrink=0.8, label="latent value")
    fig.suptitle(title)
    return fig


def latents_to_rgb(latents: torch.Tensor, min_side: int = 128) -> Image.Image:
    """The 4 channels of one latent side by side as a grey-scale strip (for widget frames)."""
    lat = latents.detach().float().cpu()
    lat = lat[0] if lat.ndim == 4 else lat
    vmax = float(lat.abs().max()) or 1.0
    grey = ((lat / vmax + 1) / 2).clamp(0, 1)  # -vmax..vmax -> 0..1
    gap = torch.ones(grey.shape[1], 1)
    strip = torch.cat([torch.cat([g, gap], dim=1) for g in grey], dim=1)[:, :-1]
    image = Image.fromarray((strip.numpy() * 255).astype(np.uint8)).convert("RGB")
    return upscale(image, min_side)


def frame_strip(frames: Sequence[ImageLike], captions: Sequence[str], n: int = 6, title: str | None = None,
                size: float = 2.2):
    """A static figure of n evenly spaced frames: what a widget shows, for readers without a kernel."""
    idx = np.unique(np.linspace(0, len(frames) - 1, min(n, len(frames))).round().astype(int))
    return show_images([to_pil(frames[i])[0] for i in idx], [captions[i] for i in idx], suptitle=title,
                       cols=len(idx), size=size)
