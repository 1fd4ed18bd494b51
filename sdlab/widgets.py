"""Interactive widgets built from precomputed frames (core ipywidgets only: JupyterLab 4 and Colab).

A slider never re-runs diffusion: every frame is computed first and stored as PNG bytes, so the
slider swaps images as fast as the browser can draw them. Each `show_*` call displays the widget
*and* a static matplotlib figure of the same idea, so that a reader of the un-run notebook (and
nbval) still sees the lesson.

    frames = [...]                       # PIL images, arrays or tensors
    show_scrubber(frames, [f"step {i}" for i in range(len(frames))], title="Denoising")
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import ipywidgets as W
from IPython.display import display

from . import viz
from .errors import InvalidInputError, SdlabError


class FrameScrubber:
    """A slider over precomputed frames, with a caption per frame."""

    def __init__(self, frames: Sequence, captions: Sequence[str], title: str = "", label: str = "frame",
                 min_side: int = 256, start: int = 0):
        if len(frames) != len(captions) or not frames:
            raise InvalidInputError(f"FrameScrubber needs one caption per frame, got {len(frames)} frames and "
                             f"{len(captions)} captions")
        self.pngs = [viz.png_bytes(f, min_side) for f in frames]
        self.captions = list(captions)
        self.image = W.Image(value=self.pngs[start], format="png")
        self.caption = W.HTML(f"<b>{self.captions[start]}</b>")
        self.slider = W.IntSlider(value=start, min=0, max=len(frames) - 1, description=label,
                                  continuous_update=True, layout=W.Layout(width="420px"))
        self.play = W.Play(min=0, max=len(frames) - 1, interval=150, description="play")
        W.jslink((self.play, "value"), (self.slider, "value"))
        self.slider.observe(self._show, names="value")
        header = [W.HTML(f"<h4>{title}</h4>")] if title else []
        self.widget = W.VBox(header + [W.HBox([self.play, self.slider]), self.caption, self.image])

    def _show(self, change) -> None:
        self.image.value = self.pngs[change["new"]]
        self.caption.value = f"<b>{self.captions[change['new']]}</b>"

    def _ipython_display_(self):
        display(self.widget)


class Comparer:
    """Two sets of frames side by side under one slider (e.g. pixel space vs latent space)."""

    def __init__(self, left: Sequence, right: Sequence, captions: Sequence[str], left_title: str, right_title: str,
                 title: str = "", label: str = "frame", min_side: int = 256):
        if not (len(left) == len(right) == len(captions)) or not captions:
            raise InvalidInputError("Comparer needs the same number of left frames, right frames and captions")
        self.left = FrameScrubber(left, captions, left_title, label, min_side)
        self.right_pngs = [viz.png_bytes(f, min_side) for f in right]
        self.right = W.Image(value=self.right_pngs[0], format="png")
        self.left.slider.observe(lambda ch: setattr(self.right, "value", self.right_pngs[ch["new"]]), names="value")
        panes = W.HBox([W.VBox([W.HTML(f"<b>{left_title}</b>"), self.left.image]),
                        W.VBox([W.HTML(f"<b>{right_title}</b>"), self.right])])
        header = [W.HTML(f"<h4>{title}</h4>")] if title else []
        self.widget = W.VBox(header + [W.HBox([self.left.play, self.left.slider]), self.left.caption, panes])

    def _ipython_display_(self):
        display(self.widget)


class GeneratePanel:
    """Prompt + seed + steps (+ guidance) -> image, generated when the button is clicked.

    `make_image(prompt, seed, steps, guidance)` returns one image; an `SdlabError` it raises (a
    size not divisible by 8, an empty prompt...) is shown under the button, not as a traceback.
    """

    def __init__(self, make_image: Callable, prompt: str, seed: int = 0, steps: int = 25,
                 guidance: float = 4.0, max_steps: int = 100, min_side: int = 256):
        self.make_image, self.min_side = make_image, min_side
        self.prompt = W.Text(value=prompt, description="prompt", layout=W.Layout(width="460px"))
        self.seed = W.IntText(value=seed, description="seed", layout=W.Layout(width="180px"))
        self.steps = W.IntSlider(value=steps, min=1, max=max_steps, description="steps")
        self.guidance = W.FloatSlider(value=guidance, min=0.0, max=15.0, step=0.5, description="guidance")
        self.button = W.Button(description="Generate", button_style="primary", icon="paint-brush")
        self.status = W.HTML("Press <b>Generate</b> (nothing runs while you type).")
        self.image = W.Image(format="png", layout=W.Layout(min_height="64px"))
        self.button.on_click(self.generate)
        self.widget = W.VBox([self.prompt, W.HBox([self.seed, self.steps]), self.guidance,
                              W.HBox([self.button, self.status]), self.image])

    def generate(self, _=None):
        self.button.disabled = True
        self.status.value = "generating..."
        try:
            image = self.make_image(self.prompt.value, self.seed.value, self.steps.value, self.guidance.value)
            self.image.value = viz.png_bytes(image, self.min_side)
            self.status.value = f"seed {self.seed.value}, {self.steps.value} steps, guidance {self.guidance.value}"
        except SdlabError as err:
            self.status.value = f"<span style='color:#b00'>{err}</span>"
        finally:
            self.button.disabled = False
        return self.image.value

    def _ipython_display_(self):
        display(self.widget)


def show_scrubber(frames: Sequence, captions: Sequence[str], title: str, label: str = "frame",
                  static_frames: int = 6, min_side: int = 256) -> FrameScrubber:
    """Display a FrameScrubber and, below it, a static strip of the same frames."""
    import matplotlib.pyplot as plt

    scrubber = FrameScrubber(frames, captions, title, label, min_side)
    display(scrubber)
    viz.frame_strip(frames, captions, static_frames, title)
    plt.show()
    return scrubber


def show_comparer(left: Sequence, right: Sequence, captions: Sequence[str], left_title: str, right_title: str,
                  title: str, label: str = "frame", static_frames: int = 5, min_side: int = 256) -> Comparer:
    """Display a Comparer and, below it, a static two-row figure of the same frames."""
    import matplotlib.pyplot as plt
    import numpy as np

    comparer = Comparer(left, right, captions, left_title, right_title, title, label, min_side)
    display(comparer)
    idx = np.unique(np.linspace(0, len(captions) - 1, min(static_frames, len(captions))).round().astype(int))
    frames = [left[i] for i in idx] + [right[i] for i in idx]
    titles = [f"{left_title}\n{captions[i]}" for i in idx] + [f"{right_title}\n{captions[i]}" for i in idx]
    viz.show_images(frames, titles, suptitle=title, cols=len(idx))
    plt.show()
    return comparer
