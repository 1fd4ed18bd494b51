"""Explorers: precomputed frames over two or more dials, swapped by the browser itself.

An explorer is one self-contained piece of HTML: its frames (PNG, base64), a table from every
combination of dial values to the frame each pane shows, and thirty lines of JavaScript that read
the dials and swap the pictures. Nothing goes back to the kernel when a dial moves, so an explorer
stays smooth on Colab and keeps working where no kernel runs at all: the rendered book
(`make book`), an HTML export. A reader whose browser runs no script (an untrusted notebook) sees
the first frame, and the static figure every explorer cell also draws.

    explorer = Explorer(
        "What guidance does at each step",
        [Dial("guidance", ["1", "4", "8"]), Dial("step", [str(s) for s in range(26)])],
        frame=lambda g, s: (decoded[g][s], predicted_x0[g][s]),   # one image per pane
        panes=["x_t", "predicted x0"])
    display(explorer)

Frames are drawn at `size` pixels (64x64 images pixelated, not blurred), so the dials and the picture
fit a 1280x800 laptop screen together, and never stored larger than they are drawn.
"""
from __future__ import annotations

import base64
import html
import io
import itertools
import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .errors import InvalidInputError
from .viz import evenly_spaced, show_images, to_pil

KINDS = ("slider", "buttons", "menu")


@dataclass(frozen=True)
class Dial:
    """One dial of an explorer: a name, a label per value, and how it is drawn.

    kind: "slider" (ordered values: steps, timesteps, strengths; a play button runs through them),
    "buttons" (a few named choices: pixels / latents) or "menu" (many named choices: words, tokens).
    """
    name: str
    labels: Sequence[str]
    kind: str = "slider"
    start: int = 0

    def __post_init__(self):
        if self.kind not in KINDS:
            raise InvalidInputError(f"Dial {self.name!r}: kind must be one of {KINDS}, got {self.kind!r}")
        if not self.labels:
            raise InvalidInputError(f"Dial {self.name!r} needs at least one value")
        if not 0 <= self.start < len(self.labels):
            raise InvalidInputError(f"Dial {self.name!r}: start {self.start} is not one of its "
                                    f"{len(self.labels)} values (0..{len(self.labels) - 1})")


PIXEL_ART = 128  # frames up to this side are stored as lossless PNG (crisp pixels); larger ones as JPEG


def encode_picture(image, size: int) -> tuple[bytes, str]:
    """One frame as (bytes, MIME type): never stored larger than it is drawn (`size` px on its longer side);
    small frames (the shapes world's 64x64) as PNG, large ones (SD's 512x512, scaled down) as JPEG."""
    from PIL import Image

    pil = to_pil(image)[0]
    if max(pil.size) > size:
        pil = pil.resize((max(1, round(pil.width * size / max(pil.size))),
                          max(1, round(pil.height * size / max(pil.size)))), Image.LANCZOS)
    buf = io.BytesIO()
    if max(pil.size) <= PIXEL_ART:
        pil.save(buf, format="PNG")
        return buf.getvalue(), "image/png"
    pil.save(buf, format="JPEG", quality=90)
    return buf.getvalue(), "image/jpeg"


def _as_tuple(frames) -> tuple:
    return tuple(frames) if isinstance(frames, (list, tuple)) else (frames,)


class Explorer:
    """Frames over a grid of dials; `frame(*indices)` gives the image of each pane for one setting.

    Args:
        title: what the explorer asks, shown above its dials.
        dials: the dials, in the order `frame` and `caption` take their indices.
        frame: called once per combination of dial indices, before anything is shown; returns one
            image per pane (PIL, uint8 array or tensor in [0, 1]). Return the same object for
            settings that share a picture (a curve that depends on one dial only): it is stored once.
        panes: a title per pane.
        caption: a sentence for each setting (default: every dial's name and value).
        size: the longer side of each pane on screen, in CSS pixels.
    """

    def __init__(self, title: str, dials: Sequence[Dial], frame: Callable, panes: Sequence[str] = ("",),
                 caption: Callable | None = None, size: int = 256):
        if not dials:
            raise InvalidInputError("an Explorer needs at least one Dial")
        if not isinstance(size, int) or not 64 <= size <= 720:
            raise InvalidInputError(f"size is the pane's width on screen in pixels, 64..720; got {size!r}")
        self.title, self.dials, self.panes, self.size = title, list(dials), list(panes), size
        self.shape = tuple(len(d.labels) for d in self.dials)
        self._caption = caption or (lambda *ix: ", ".join(f"{d.name} {d.labels[i]}" for d, i in zip(
            self.dials, ix, strict=True)))
        self.pictures: list[bytes] = []   # each distinct picture once, encoded
        self.mimes: list[str] = []        # and its MIME type
        self.table: list[list[int]] = []  # per setting (row-major over the dials), the picture of each pane
        self.captions: list[str] = []
        self.frames: list[tuple] = []     # per setting, the images as given (for the static figure)
        self.sizes: list[tuple[int, int]] = []  # per pane, (width, height) on screen
        by_object: dict[int, int] = {}   # a picture given again as the same object is not encoded again
        by_bytes: dict[bytes, int] = {}   # nor stored twice when two objects encode alike
        for ix in itertools.product(*(range(n) for n in self.shape)):
            images = _as_tuple(frame(*ix))
            if len(images) != len(self.panes):
                raise InvalidInputError(f"frame{ix} gave {len(images)} images for {len(self.panes)} panes "
                                        f"({self.panes})")
            row = []
            for image in images:
                if id(image) not in by_object:   # ids stay unique: `frames` keeps every object alive
                    data, mime = encode_picture(image, size)
                    if data not in by_bytes:
                        by_bytes[data] = len(self.pictures)
                        self.pictures.append(data)
                        self.mimes.append(mime)
                    by_object[id(image)] = by_bytes[data]
                row.append(by_object[id(image)])
            self.frames.append(images)
            self.table.append(row)
            self.captions.append(str(self._caption(*ix)))
        for pane in self.frames[0]:
            pil = to_pil(pane)[0]
            scale = size / max(pil.size)
            self.sizes.append((round(pil.width * scale), round(pil.height * scale)))
        self.id = f"sdx-{uuid.uuid4().hex[:12]}"

    def index(self, *ix: int) -> int:
        """Row-major position of one setting in `table` (what the page computes from its dials)."""
        if len(ix) != len(self.shape) or not all(0 <= i < n for i, n in zip(ix, self.shape, strict=True)):
            raise InvalidInputError(f"a setting is one index per dial within {self.shape}, got {ix}")
        flat = 0
        for i, n in zip(ix, self.shape, strict=True):
            flat = flat * n + i
        return flat

    def pictures_at(self, *ix: int) -> list[bytes]:
        """The encoded picture each pane shows at one setting."""
        return [self.pictures[k] for k in self.table[self.index(*ix)]]

    def uri(self, k: int) -> str:
        return f"data:{self.mimes[k]};base64,{base64.b64encode(self.pictures[k]).decode()}"

    # -- the page -----------------------------------------------------------------------------------
    def _dial_html(self, k: int, dial: Dial) -> str:
        name = html.escape(dial.name)
        if dial.kind == "slider":
            labels = html.escape(json.dumps(list(dial.labels)))
            play = (f'<button type="button" class="sdx-play" data-for="{k}" title="play through {name}">&#9654;'
                    "</button>") if len(dial.labels) > 1 else ""
            control = (f'<input type="range" data-dial="{k}" min="0" max="{len(dial.labels) - 1}" '
                       f'value="{dial.start}" aria-label="{name}" style="width:260px;vertical-align:middle">'
                       f'<output class="sdx-value" data-for="{k}" data-labels="{labels}" style="display:inline-block;'
                       f'min-width:6em;margin-left:6px">{html.escape(dial.labels[dial.start])}</output>{play}')
        elif dial.kind == "menu":
            options = "".join(f'<option value="{i}"{" selected" if i == dial.start else ""}>{html.escape(label)}'
                              "</option>" for i, label in enumerate(dial.labels))
            control = f'<select data-dial="{k}" aria-label="{name}">{options}</select>'
        else:
            control = f'<span data-dial="{k}" role="radiogroup" aria-label="{name}">' + "".join(
                f'<label style="margin-right:10px"><input type="radio" name="{self.id}-{k}" value="{i}"'
                f'{" checked" if i == dial.start else ""}> {html.escape(label)}</label>'
                for i, label in enumerate(dial.labels)) + "</span>"
        return (f'<div class="sdx-dial" style="margin:2px 0"><span style="display:inline-block;min-width:9em;'
                f'font-weight:600">{name}</span>{control}</div>')

    def _repr_html_(self) -> str:
        start = self.index(*(d.start for d in self.dials))
        panes = "".join(
            f'<figure style="margin:0"><img data-pane="{p}" alt="{html.escape(title)}" width="{w}" height="{h}" '
            f'style="width:{w}px;height:{h}px;image-rendering:pixelated;border:1px solid #ccc" '
            f'src="{self.uri(self.table[start][p])}">'
            f'<figcaption style="text-align:center;font-size:90%">{html.escape(title)}</figcaption></figure>'
            for p, (title, (w, h)) in enumerate(zip(self.panes, self.sizes, strict=True)))
        data = json.dumps({"shape": self.shape, "table": self.table, "captions": self.captions,
                           "pictures": [self.uri(k) for k in range(len(self.pictures))]}).replace("</", "<\\/")
        return (
            f'<div class="sdlab-explorer" id="{self.id}" data-index="{start}" style="display:inline-block;'
            f'font-family:sans-serif;font-size:14px;max-width:100%;padding:6px 0">'
            f'<div style="font-weight:700;font-size:15px;margin-bottom:4px">{html.escape(self.title)}</div>'
            + "".join(self._dial_html(k, d) for k, d in enumerate(self.dials))
            + f'<div style="display:flex;flex-wrap:wrap;gap:12px;margin-top:6px">{panes}</div>'
            f'<div class="sdx-caption" style="margin-top:4px;max-width:{max(720, self.size)}px">'
            f'{html.escape(self.captions[start])}</div></div>'
            f'<script type="application/json" id="{self.id}-data">{data}</script>'
            f"<script>{_SCRIPT.replace('__ID__', self.id)}</script>")

    def _repr_mimebundle_(self, include=None, exclude=None):
        return {"text/html": self._repr_html_(),
                "text/plain": f"Explorer({self.title!r}: dials {[d.name for d in self.dials]}, "
                              f"{len(self.table)} settings, {len(self.pictures)} pictures)"}

    # -- the static figure --------------------------------------------------------------------------
    def figure(self, rows: int, cols: int, pane: int = 0, max_cols: int = 6, row_values: Sequence[int] | None = None,
               col_values: Sequence[int] | None = None, **show):
        """A static grid of one pane: dial `rows` down and dial `cols` across, each evenly thinned to `max_cols`
        values unless `row_values`/`col_values` name them, every other dial at its start value. Returns the
        matplotlib figure (`show` goes to `viz.show_images`)."""
        down = list(row_values) if row_values is not None else evenly_spaced(self.shape[rows], max_cols)
        across = list(col_values) if col_values is not None else evenly_spaced(self.shape[cols], max_cols)
        setting = [d.start for d in self.dials]
        images, titles = [], []
        for r in down:
            for c in across:
                setting[rows], setting[cols] = r, c
                images.append(self.frames[self.index(*setting)][pane])
                titles.append(self.captions[self.index(*setting)])
        return show_images(images, titles, suptitle=f"{self.title} ({self.panes[pane] or 'frames'})",
                           cols=len(across), **show)


# Reads the dials, looks the setting up in the table, swaps each pane's picture. Runs once per explorer;
# `data-index` on the root is the setting shown (what the browser tests read).
_SCRIPT = r"""
(function () {
  const root = document.getElementById("__ID__");
  if (!root || root.dataset.ready) return;
  root.dataset.ready = "1";
  const data = JSON.parse(document.getElementById("__ID__-data").textContent);
  const dials = Array.from(root.querySelectorAll("[data-dial]"));
  const panes = Array.from(root.querySelectorAll("img[data-pane]"));
  const caption = root.querySelector(".sdx-caption");
  const valueOf = (d) => d.tagName === "SPAN" ? +d.querySelector("input:checked").value : +d.value;
  function show() {
    let flat = 0;
    dials.forEach((d, k) => { flat = flat * data.shape[k] + valueOf(d); });
    data.table[flat].forEach((k, p) => { panes[p].src = data.pictures[k]; });
    caption.textContent = data.captions[flat];
    root.dataset.index = flat;
    root.querySelectorAll("output[data-for]").forEach((o) => {
      const d = dials[+o.dataset.for];
      o.textContent = JSON.parse(o.dataset.labels)[valueOf(d)];
    });
  }
  dials.forEach((d) => { d.addEventListener("input", show); d.addEventListener("change", show); });
  root.querySelectorAll("button.sdx-play").forEach((b) => {
    let timer = null;
    b.addEventListener("click", () => {
      if (timer) { clearInterval(timer); timer = null; b.innerHTML = "&#9654;"; return; }
      const d = dials[+b.dataset.for];
      if (+d.value >= +d.max) d.value = 0;
      b.innerHTML = "&#10074;&#10074;";
      timer = setInterval(() => {
        if (+d.value >= +d.max) { clearInterval(timer); timer = null; b.innerHTML = "&#9654;"; return; }
        d.value = +d.value + 1; show();
      }, 200);
    });
  });
})();
"""
