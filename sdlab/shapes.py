"""The shapes world: captioned 64x64 scenes drawn by a program, and a judge that reads them back.

The tiny engine is trained on this world instead of LAION: a plain dark canvas with one or two
coloured shapes, each described by four attributes (colour, shape, position, size), and a
caption written in one of many wordings ("a large red circle on the left", "red circle, left",
"a circle, red, at the left"). Because the world is drawn by code, its truth is known, and
`judge` can read any image's pixels -- a training sample or the model's output -- back into
attributes with no model at all. That is how the project measures prompt adherence.

This module knows nothing about models: it uses NumPy only.

    python -m sdlab.shapes      # draws a sample grid to figures/ and prints the judge's accuracy
"""
from __future__ import annotations

import argparse
import textwrap
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import InvalidInputError

IMAGE_SIZE = 64
BACKGROUND = (22, 22, 30)
# One fixed RGB per colour word, spread around the hue circle (red 0, orange 32, yellow 54,
# green 128, blue 222, purple 272 degrees) and all bright enough to stand out from the background.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (230, 40, 40),
    "orange": (245, 140, 20),
    "yellow": (235, 220, 40),
    "green": (40, 190, 60),
    "blue": (40, 90, 235),
    "purple": (150, 60, 220),
}
SHAPES = ("circle", "square", "triangle")
POSITIONS = ("left", "right", "top", "bottom", "center")
SIZES = ("small", "large")
ATTRIBUTES = ("colour", "shape", "position", "size")

# Object centres (x, y) in pixels, and half-extents (the radius of a circle, half the side of a
# square, half the base of a triangle) for each size.
_CENTRES = {"left": (16, 32), "right": (48, 32), "top": (32, 16), "bottom": (32, 48), "center": (32, 32)}
_HALF_EXTENT = {"small": 6, "large": 11}
_JITTER = 2  # pixels of random offset of the centre, so that positions are regions, not points
# Two-object scenes put their objects on opposite sides, where even two large shapes never touch.
TWO_OBJECT_LAYOUTS = (("left", "right"), ("right", "left"), ("top", "bottom"), ("bottom", "top"))

_PLACE_WORDS = {
    "left": ("on the left", "at the left", "to the left", "on the left side", "left"),
    "right": ("on the right", "at the right", "to the right", "on the right side", "right"),
    "top": ("at the top", "on top", "near the top", "at the top of the image", "top"),
    "bottom": ("at the bottom", "near the bottom", "at the bottom of the image", "below", "bottom"),
    "center": ("in the center", "in the middle", "at the center", "centered", "center"),
}
# Templates for one object. {a} is the article chosen for the word after it ("a"/"an").
_TEMPLATES = (
    "{a} {size} {colour} {shape} {place}",
    "{colour} {shape}, {place_word}",
    "{a} {shape}, {colour}, {place}",
    "{place}: {a} {size} {colour} {shape}",
    "there is {a} {size} {colour} {shape} {place}",
    "{a} {colour} {shape} {place}, {size}",
    "{size} {colour} {shape} {place}",
    "{a} {size} {shape} in {colour} {place}",
)


@dataclass(frozen=True)
class Thing:
    """One object of a scene: the four attributes the judge reads back."""

    colour: str
    shape: str
    position: str
    size: str

    def __post_init__(self):
        for name, allowed in (("colour", COLOURS), ("shape", SHAPES), ("position", POSITIONS), ("size", SIZES)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"unknown {name} {getattr(self, name)!r}; choose one of {sorted(allowed)}")

    def prompt(self) -> str:
        """The canonical wording, e.g. 'a large red circle on the left'."""
        return _with_articles(f"{{a}} {self.size} {self.colour} {self.shape} {_PLACE_WORDS[self.position][0]}")


@dataclass
class Scene:
    """A drawn scene: its objects, one caption for it, its pixels (64, 64, 3) uint8, and one
    boolean mask (64, 64) per object, where it was drawn (a later object covers an earlier one)."""

    things: tuple[Thing, ...]
    caption: str
    image: np.ndarray
    masks: tuple[np.ndarray, ...] = ()


# --------------------------------------------------------------------------- drawing

_YY, _XX = np.mgrid[0:IMAGE_SIZE, 0:IMAGE_SIZE] + 0.5  # pixel centres


def box_coords(cx: float, cy: float, r: float, ry: float | None = None,
               size: int = IMAGE_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """Each pixel centre of a (size, size) image in units of a box's half-extents: (u, v), 0 at the
    centre (cx, cy), +-1 at the box's edges (half-width r, half-height ry, default r)."""
    yy, xx = (_YY, _XX) if size == IMAGE_SIZE else np.mgrid[0:size, 0:size] + 0.5
    return (xx - cx) / r, (yy - cy) / (ry or r)


def shape_mask(shape: str, cx: float, cy: float, r: float, ry: float | None = None,
               size: int = IMAGE_SIZE) -> np.ndarray:
    """Boolean (size, size) mask of a shape centred at (cx, cy) with half-extent r (ry: a different
    half-height, to fit a bounding box that is not square)."""
    u, v = box_coords(cx, cy, r, ry, size)
    if shape == "circle":
        return u**2 + v**2 <= 1
    if shape == "square":
        return (np.abs(u) <= 1) & (np.abs(v) <= 1)
    if shape == "triangle":  # apex up, base 2r wide, height 2r: area half its bounding box
        return (np.abs(v) <= 1) & (np.abs(u) <= (v + 1) / 2)
    raise ValueError(f"unknown shape {shape!r}; choose one of {SHAPES}")


def box_fit_ious(mask: np.ndarray, candidates: Sequence[str] = SHAPES, template=shape_mask) -> dict[str, float]:
    """IoU of an object's mask with each candidate shape drawn to fill the object's bounding box.

    Fitting the box compares outlines only, not place or size. `template(shape, cx, cy, rx, ry,
    size)` draws a candidate (default `shape_mask`; `sdlab.finetune` adds shapes of its own).
    """
    ys, xs = np.nonzero(mask)
    cx, cy = (xs.min() + xs.max() + 1) / 2, (ys.min() + ys.max() + 1) / 2
    rx, ry = (xs.max() - xs.min() + 1) / 2, (ys.max() - ys.min() + 1) / 2
    ious = {}
    for c in candidates:
        fit = template(c, cx, cy, rx, ry, mask.shape[0])
        ious[c] = float((mask & fit).sum() / (mask | fit).sum())
    return ious


def placement(thing: Thing, rng: np.random.Generator | None = None) -> tuple[float, float, float]:
    """Where `thing` is drawn: centre (cx, cy) and half-extent r in pixels; `rng` jitters them (None: exact)."""
    cx, cy = _CENTRES[thing.position]
    r = _HALF_EXTENT[thing.size]
    if rng is not None:
        cx, cy = cx + rng.uniform(-_JITTER, _JITTER), cy + rng.uniform(-_JITTER, _JITTER)
        r = r + rng.uniform(-1, 1)
    return cx, cy, r


def draw(things: Sequence[Thing], rng: np.random.Generator | None = None) -> np.ndarray:
    """Draw objects on the dark canvas; `rng` jitters centres and sizes (None: exact layout)."""
    return draw_with_masks(things, rng)[0]


def draw_with_masks(things: Sequence[Thing], rng: np.random.Generator | None = None
                    ) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
    """`draw`, and each object's visible pixels (64, 64) bool: what it speaks of in the image."""
    image = np.empty((IMAGE_SIZE, IMAGE_SIZE, 3), np.uint8)
    image[:] = BACKGROUND
    masks: list[np.ndarray] = []
    for thing in things:
        mask = shape_mask(thing.shape, *placement(thing, rng))
        masks = [m & ~mask for m in masks]
        masks.append(mask)
        image[mask] = COLOURS[thing.colour]
    return image, tuple(masks)


# --------------------------------------------------------------------------- captions

def _with_articles(text: str) -> str:
    """Replace each '{a}' with 'a' or 'an' for the word that follows it."""
    words = text.split(" ")
    for i, w in enumerate(words):
        if w == "{a}":
            nxt = words[i + 1] if i + 1 < len(words) else ""
            words[i] = "an" if nxt[:1] in "aeiou" and nxt else "a"
    return " ".join(words)


def describe(thing: Thing, rng: np.random.Generator, drop_p: float = 0.15) -> str:
    """One caption for one object in a random wording; size and place are sometimes left out."""
    template = _TEMPLATES[rng.integers(len(_TEMPLATES))]
    words = _PLACE_WORDS[thing.position]
    size = "" if rng.random() < drop_p else thing.size  # under-specified captions teach defaults
    keep_place = rng.random() >= drop_p
    text = template.format(
        a="{a}", colour=thing.colour, shape=thing.shape, size=size,
        place=words[rng.integers(len(words) - 1)] if keep_place else "",
        place_word=words[-1] if keep_place else "",
    )
    text = " ".join(text.split()).replace(" ,", ",").strip(" ,:")
    return _with_articles(text)


def describe_pair(first: Thing, second: Thing, rng: np.random.Generator) -> str:
    """A caption for a two-object scene, e.g. 'a red circle and a blue square'."""
    def name(t: Thing, with_size: bool) -> str:
        return f"{{a}} {t.size + ' ' if with_size else ''}{t.colour} {t.shape}"

    with_size = rng.random() < 0.5
    if rng.random() < 0.5:
        text = f"{name(first, with_size)} and {name(second, with_size)}"
    else:
        p1, p2 = _PLACE_WORDS[first.position][0], _PLACE_WORDS[second.position][0]
        text = f"{name(first, with_size)} {p1} and {name(second, with_size)} {p2}"
    return _with_articles(text)


# --------------------------------------------------------------------------- sampling

def random_thing(rng: np.random.Generator, position: str | None = None) -> Thing:
    return Thing(
        colour=list(COLOURS)[rng.integers(len(COLOURS))],
        shape=SHAPES[rng.integers(len(SHAPES))],
        position=position or POSITIONS[rng.integers(len(POSITIONS))],
        size=SIZES[rng.integers(len(SIZES))],
    )


def random_scene(rng: np.random.Generator, p_two: float = 0.0) -> Scene:
    """Draw one random scene; with probability `p_two` it holds two objects on opposite sides."""
    if rng.random() < p_two:
        pos1, pos2 = TWO_OBJECT_LAYOUTS[rng.integers(len(TWO_OBJECT_LAYOUTS))]
        first = random_thing(rng, pos1)
        second = random_thing(rng, pos2)
        while (second.colour, second.shape) == (first.colour, first.shape):
            second = random_thing(rng, pos2)
        things = (first, second)
        caption = describe_pair(first, second, rng)
    else:
        things = (random_thing(rng),)
        caption = describe(things[0], rng)
    return Scene(things, caption, *draw_with_masks(things, rng))


def sample(n: int, seed: int = 0, p_two: float = 0.0) -> list[Scene]:
    """`n` scenes from a fresh generator seeded with `seed` (same seed, same scenes)."""
    rng = np.random.default_rng(seed)
    return [random_scene(rng, p_two) for _ in range(n)]


def batch(scenes: Iterable[Scene]) -> tuple[np.ndarray, list[str]]:
    """Stack scenes into images (n, 64, 64, 3) uint8 and a list of captions."""
    scenes = list(scenes)
    return np.stack([s.image for s in scenes]), [s.caption for s in scenes]


def all_things() -> list[Thing]:
    """Every single-object combination (6 colours x 3 shapes x 5 positions x 2 sizes = 180)."""
    return [Thing(c, s, p, z) for c in COLOURS for s in SHAPES for p in POSITIONS for z in SIZES]


# --------------------------------------------------------------------------- the judge

_PALETTE = np.array(list(COLOURS.values()), np.float32)
_MIN_PIXELS = 10  # a component smaller than this is noise, not an object
FOREGROUND_DIFFERENCE = 70  # a pixel this far from the background (in its most different channel) is an object's
CENTER_RADIUS = 8  # pixels: an object whose box centre is this close to the image centre stands "center"
LARGE_EXTENT = 17  # pixels across: between small objects (half-extent 6 +- 1) and large ones (11 +- 1)


def foreground(image: np.ndarray) -> np.ndarray:
    """Pixels that differ clearly from the background colour."""
    diff = np.abs(image.astype(np.int16) - np.array(BACKGROUND, np.int16)).max(-1)
    return diff > FOREGROUND_DIFFERENCE


def components(mask: np.ndarray) -> list[np.ndarray]:
    """4-connected components of a boolean mask, largest first (label propagation in NumPy)."""
    h, w = mask.shape
    labels = np.where(mask, np.arange(1, h * w + 1).reshape(h, w), 0)
    while True:
        padded = np.pad(labels, 1)
        neighbours = np.stack([padded[:-2, 1:-1], padded[2:, 1:-1], padded[1:-1, :-2], padded[1:-1, 2:], labels])
        new = np.where(mask, neighbours.max(0), 0)
        if np.array_equal(new, labels):
            break
        labels = new
    ids, counts = np.unique(labels[labels > 0], return_counts=True)
    return [labels == i for i in ids[np.argsort(-counts)]]


def read_thing(image: np.ndarray, mask: np.ndarray) -> Thing:
    """Read one object's four attributes from its pixels."""
    ys, xs = np.nonzero(mask)
    mean_rgb = image[mask].astype(np.float32).mean(0)
    colour = list(COLOURS)[int(np.argmin(((_PALETTE - mean_rgb) ** 2).sum(1)))]
    # shape: the ideal circle, square or triangle that fills the same bounding box and overlaps
    # the object best (intersection over union) -- robust to the soft corners a model draws
    ious = box_fit_ious(mask)
    shape = max(ious, key=ious.get)
    width, height = xs.max() - xs.min() + 1, ys.max() - ys.min() + 1
    # position: where its bounding-box centre lies relative to the image centre
    dx = (xs.max() + xs.min() + 1) / 2 - IMAGE_SIZE / 2
    dy = (ys.max() + ys.min() + 1) / 2 - IMAGE_SIZE / 2
    if max(abs(dx), abs(dy)) < CENTER_RADIUS:
        position = "center"
    elif abs(dx) >= abs(dy):
        position = "left" if dx < 0 else "right"
    else:
        position = "top" if dy < 0 else "bottom"
    size = "large" if max(width, height) > LARGE_EXTENT else "small"
    return Thing(colour, shape, position, size)


def judge(image: np.ndarray, max_objects: int = 2) -> tuple[Thing, ...]:
    """Read the objects in an image (H, W, 3) uint8 from its pixels alone, largest first.

    Components smaller than a few pixels are ignored; an empty canvas gives ().
    """
    image = np.asarray(image)
    if image.shape != (IMAGE_SIZE, IMAGE_SIZE, 3):
        raise InvalidInputError(f"judge reads {IMAGE_SIZE}x{IMAGE_SIZE} RGB images (H, W, 3), got shape "
                                f"{image.shape}: give one image at a time, at 64x64")
    if image.dtype != np.uint8:
        raise InvalidInputError(f"judge reads uint8 pixels, got {image.dtype}: convert [0, 1] images with "
                                "sdlab.images.to_uint8 first (a float image would be read as almost black)")
    parts = [m for m in components(foreground(image)) if m.sum() >= _MIN_PIXELS][:max_objects]
    return tuple(read_thing(image, m) for m in parts)


def match(expected: Sequence[Thing], found: Sequence[Thing]) -> dict[str, bool]:
    """Per attribute: does what the judge found agree with what was asked?

    Objects are paired by position when they can be (two-object scenes put objects on opposite
    sides); otherwise in order. A missing object fails every attribute.
    """
    result = dict.fromkeys(ATTRIBUTES, True)
    remaining = list(found)
    for want in expected:
        got = next((t for t in remaining if t.position == want.position), remaining[0] if remaining else None)
        if got is None:
            return dict.fromkeys(ATTRIBUTES, False)
        remaining.remove(got)
        for a in ATTRIBUTES:
            result[a] &= getattr(got, a) == getattr(want, a)
    return result


# What guessing gives: one value of each attribute drawn uniformly (and all four right at once).
CHANCE = {"colour": 1 / len(COLOURS), "shape": 1 / len(SHAPES), "position": 1 / len(POSITIONS), "size": 1 / len(SIZES)}
CHANCE["all"] = float(np.prod(list(CHANCE.values())))


def hits(expected: Sequence[Sequence[Thing]], images: Iterable[np.ndarray]) -> dict[str, np.ndarray]:
    """Judge each image against what its prompt asked: per attribute (and "all"), one bool per image.

    Args:
        expected: per image, the objects its prompt asked for.
        images: (H, W, 3) uint8 images, one per entry of `expected`.
    """
    rows = [match(want, judge(image)) for want, image in zip(expected, images, strict=True)]
    out = {a: np.array([r[a] for r in rows], dtype=bool) for a in ATTRIBUTES}
    out["all"] = np.logical_and.reduce([out[a] for a in ATTRIBUTES])
    return out


def judge_accuracy(n: int = 1000, seed: int = 12345, p_two: float = 0.0) -> dict[str, float]:
    """Fraction of fresh scenes whose every attribute the judge reads correctly."""
    hits = dict.fromkeys(ATTRIBUTES, 0)
    for scene in sample(n, seed, p_two):
        for a, ok in match(scene.things, judge(scene.image)).items():
            hits[a] += ok
    return {a: hits[a] / n for a in ATTRIBUTES}


def format_accuracy(acc: dict[str, float]) -> str:
    return " ".join(f"{a} {100 * v:.1f}%" for a, v in acc.items())


# --------------------------------------------------------------------------- command line

def save_grid(scenes: Sequence[Scene], path: Path, cols: int = 6) -> Path:
    """Save scenes with their captions as a labelled PNG grid."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = -(-len(scenes) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.4 * cols, 2.7 * rows))
    for ax in np.atleast_1d(axes).ravel():
        ax.axis("off")
    for ax, scene in zip(np.atleast_1d(axes).ravel(), scenes, strict=False):  # a last row may be short
        ax.imshow(scene.image)
        ax.set_title(textwrap.fill(scene.caption, 30), fontsize=7)
    fig.suptitle("The shapes world: scenes and captions the tiny engine is trained on")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m sdlab.shapes",
                                     description="Draw the shapes world and test the judge.")
    parser.add_argument("--out", type=Path, default=Path("figures/shapes_world.png"))
    parser.add_argument("-n", type=int, default=1000, help="fresh scenes for the judge's accuracy")
    args = parser.parse_args(argv)
    print(f"sample grid: {save_grid(sample(24, seed=7, p_two=0.25), args.out)}")
    print(f"two-object scenes: judge accuracy {format_accuracy(judge_accuracy(args.n, seed=99, p_two=1.0))}")
    print(f"judge accuracy: {format_accuracy(judge_accuracy(args.n))}")


if __name__ == "__main__":
    main()
