"""Figures for the notebooks: image grids, latent channels, frame strips. Matplotlib and PIL only.

Every figure has a title; axes that carry a quantity are labelled. Labels are ASCII.
"""
from __future__ import annotations

import io
import textwrap
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image

from .errors import InvalidInputError
from .images import to_uint8

ImageLike = Image.Image | np.ndarray | torch.Tensor


def to_pil(images) -> list[Image.Image]:
    """PIL images from a PIL image or list, a uint8/float array (b, H, W, 3), or a tensor (b, 3, H, W) in [0, 1]."""
    if isinstance(images, Image.Image):
        return [images]
    if isinstance(images, (list, tuple)):
        return [im for x in images for im in to_pil(x)]
    if isinstance(images, np.ndarray) and images.dtype == np.uint8:
        arr = images[None] if images.ndim == 3 else images
    else:
        arr = to_uint8(images)
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
               chance: dict[str, float] | None = None, dodge: float = 0.012):
    """Rates with their 95% intervals as error bars, one line per key, and dotted chance levels.

    Args:
        rates: per key, one (rate, low, high) per step, as `stats.rate` returns.
        chance: per key, the rate guessing would give (drawn in the same colour).
        dodge: how far apart the series are drawn sideways, as a fraction of the x range (of its logarithm
            on a log axis: set the scale first), so that equal rates do not hide each other's bars.
    """
    x = np.asarray(steps, dtype=float)
    log = ax.get_xscale() == "log"
    span = float(np.ptp(np.log10(x) if log else x)) or 1.0
    for k, (name, values) in enumerate(rates.items()):
        r, lo, hi = (np.array(v) for v in zip(*values, strict=True))
        shift = (k - (len(rates) - 1) / 2) * dodge * span
        xs = x * 10 ** shift if log else x + shift
        yerr = np.clip([r - lo, hi - r], 0, None)  # a rate of 0 or 1 may sit a rounding error outside its interval
        ax.errorbar(xs, r, yerr=yerr, marker="o", ms=4, capsize=3, color=f"C{k}", label=name)
        if chance and name in chance:
            ax.axhline(chance[name], color=f"C{k}", ls=":", lw=1)
    ax.set_ylim(-0.03, 1.03)
    return ax


def figure_image(fig, dpi: int = 80, close: bool = True) -> Image.Image:
    """A matplotlib figure as an RGB picture, a chart as one frame of an explorer; closed unless `close=False`
    (to move a marker and draw the next frame from the same figure)."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    if close:
        plt.close(fig)
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


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
    # each line of a title wrapped on its own: a "\n" the caller put in (widgets.show_comparer does) stays a break
    wrapped = ["\n".join(textwrap.fill(line, wrap) for line in str(t).split("\n")) for t in titles] if titles else []
    title_lines = max((w.count("\n") + 1 for w in wrapped), default=0)
    aspect = max(im.height / im.width for im in pils)  # wide frames (several panels side by side) need short rows
    row_height = size * aspect + 0.15 + 0.14 * title_lines  # 8-point titles: about 0.14 inch a line
    fig, axes = plt.subplots(rows, cols, figsize=(size * cols, row_height * rows + (0.3 if suptitle else 0)),
                             squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for i, (ax, im) in enumerate(zip(axes.ravel(), pils, strict=False)):  # a last row may be short
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
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(im, ax=list(np.atleast_1d(axes)), shrink=0.8, label="latent value")
    fig.suptitle(title)
    return fig


def latents_to_rgb(latents: torch.Tensor, min_side: int = 128, cols: int | None = None) -> Image.Image:
    """The channels of one latent as grey-scale tiles (grey 0, white positive, black negative, one scale for all),
    side by side or `cols` to a row (2 makes SD's 4 channels a square), for widget frames."""
    lat = latents.detach().float().cpu()
    lat = lat[0] if lat.ndim == 4 else lat
    vmax = float(lat.abs().max()) or 1.0
    grey = ((lat / vmax + 1) / 2).clamp(0, 1)  # -vmax..vmax -> 0..1
    tiles = (grey.numpy() * 255).astype(np.uint8)[..., None].repeat(3, axis=-1)  # (channels, h, w, 3)
    gap = max(1, tiles.shape[1] // 16)
    return upscale(Image.fromarray(image_grid(tiles, cols or len(tiles), gap=gap)), min_side)


def evenly_spaced(n: int, k: int) -> list[int]:
    """k indices (fewer if n < k) spread evenly over 0..n-1, first and last included: the frames a static
    figure shows of a widget's n."""
    return [int(i) for i in np.unique(np.linspace(0, n - 1, min(n, k)).round())]


def frame_strip(frames: Sequence[ImageLike], captions: Sequence[str], n: int = 6, title: str | None = None,
                size: float = 2.2, cols: int | None = None):
    """A static figure of n evenly spaced frames (`cols` to a row; default all in one): what a widget shows,
    for readers without a kernel. Wide frames (grids of samples) read better larger, two to a row."""
    idx = evenly_spaced(len(frames), n)
    return show_images([to_pil(frames[i])[0] for i in idx], [captions[i] for i in idx], suptitle=title,
                       cols=cols or len(idx), size=size)


def heat_overlay(token_map: torch.Tensor, image: np.ndarray, alpha: float = 0.6, top: float = 16.0) -> np.ndarray:
    """A word's attention map (h, w) enlarged to a uint8 image (H, W, 3), each cell a flat block, blended over it.

    The colour is the map's ratio to uniform attention on a fixed scale: black 0, dark 1 (what
    spreading the attention evenly gives), brightest at `top` or more. Returns floats in [0, 1].
    """
    import matplotlib.pyplot as plt

    from .attention import upsample

    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3:
        raise InvalidInputError(f"heat_overlay blends over one uint8 image (H, W, 3), got {image.dtype} {image.shape}")
    m = upsample(token_map, image.shape[:2], mode="nearest").numpy()
    rgb = plt.get_cmap("inferno")(np.clip(m * m.size / top, 0, 1))[..., :3]
    return (1 - alpha) * image / 255 + alpha * rgb


def pipeline_diagram(tiny_shapes: dict, sd15_shapes: dict):
    """Stable Diffusion's four parts as boxes, with the shape of the tensor between each pair.

    Args:
        tiny_shapes, sd15_shapes: {"input_ids", "prompt_embeds", "latents", "image"} -> a shape
            with the batch first (the image (H, W, 3)), as notebook 00 traces them.
    """
    import matplotlib.pyplot as plt

    def fmt(key, shape):
        return "x".join(map(str, shape if key == "image" else shape[1:]))  # without the batch dimension

    stages = [("input_ids", "Tokenizer\n(CLIP BPE)", "#dde9f7"), ("prompt_embeds", "Text encoder\n(CLIP)", "#dde9f7"),
              ("latents", "UNet + scheduler\nx num_inference_steps", "#f7e3d0"), ("image", "VAE decoder", "#dff2dd")]
    fig, ax = plt.subplots(figsize=(15, 3.0))
    ax.set(xlim=(0, 15.6), ylim=(0.35, 3.0))
    ax.axis("off")
    arrow = {"arrowstyle": "->", "lw": 1.5}
    for i, (out, box, colour) in enumerate(stages):
        x = 0.9 + 3.5 * i
        ax.add_patch(plt.Rectangle((x, 1.7), 2.3, 1.1, fc=colour, ec="k"))
        ax.text(x + 1.15, 2.25, box, ha="center", va="center", fontsize=10)
        ax.annotate("", xy=(x + 3.5, 2.25), xytext=(x + 2.3, 2.25), arrowprops=arrow)
        label = out if out != "image" else "image (H x W x 3)"
        ax.text(x + 2.9, 1.45, f"{label}\ntiny: {fmt(out, tiny_shapes[out])}\nSD v1.5: {fmt(out, sd15_shapes[out])}",
                ha="center", va="top", fontsize=8.5)
    ax.annotate("", xy=(0.9, 2.25), xytext=(0.1, 2.25), arrowprops=arrow)
    ax.text(0.1, 2.45, "prompt", fontsize=9)
    ax.annotate("noise z_T\n(latents)", xy=(9.05, 1.7), xytext=(9.05, 0.55), ha="center", fontsize=8.5,
                arrowprops={"arrowstyle": "->", "lw": 1.2})
    ax.set_title("Stable Diffusion's pipeline and the shapes of the tensors between its parts (one prompt)")
    return fig
