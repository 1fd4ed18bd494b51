"""The series' widgets: scrubbers and comparers over precomputed frames, and a generate-on-click panel.

A slider never re-runs diffusion: scrubbers and comparers are `explorer.Explorer`s with one dial, whose
frames the browser swaps by itself (no kernel needed, so they work in the rendered book). Each `show_*`
call displays the widget *and* a static matplotlib figure of the same idea, so that a reader of the un-run
notebook (and nbval) still sees the lesson. `GeneratePanel` is the one widget that runs the model: core
ipywidgets (JupyterLab 4 and Colab), generating only when its button is clicked.

    frames = [...]                       # PIL images, arrays or tensors
    show_scrubber(frames, [f"step {i}" for i in range(len(frames))], title="Denoising")
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import ipywidgets as W
from IPython.display import display

from . import viz
from .errors import InvalidInputError, SdlabError
from .explorer import Dial, Explorer


def scrubber(frames: Sequence, captions: Sequence[str], title: str = "", label: str = "frame", start: int = 0,
             size: int = 256) -> Explorer:
    """One slider over precomputed frames, with a caption per frame (an `Explorer` with one dial)."""
    if len(frames) != len(captions) or not frames:
        raise InvalidInputError(f"a scrubber needs one caption per frame, got {len(frames)} frames and "
                                f"{len(captions)} captions")
    return Explorer(title, [Dial(label, [str(i + 1) for i in range(len(frames))], start=start)],
                    frame=lambda i: frames[i], caption=lambda i: captions[i], size=size)


def comparer(left: Sequence, right: Sequence, captions: Sequence[str], left_title: str, right_title: str,
             title: str = "", label: str = "frame", size: int = 256) -> Explorer:
    """Two sets of frames side by side under one slider (e.g. pixel space vs latent space)."""
    if not (len(left) == len(right) == len(captions)) or not captions:
        raise InvalidInputError("a comparer needs the same number of left frames, right frames and captions")
    return Explorer(title, [Dial(label, [str(i + 1) for i in range(len(captions))])],
                    frame=lambda i: (left[i], right[i]), panes=[left_title, right_title],
                    caption=lambda i: captions[i], size=size)


class GeneratePanel:
    """Prompt + seed + steps (+ guidance) -> image, generated when the button is clicked.

    `make_image(prompt, seed, steps, guidance)` returns one image; an `SdlabError` it raises (a
    size not divisible by 8, an empty prompt...) is shown under the button, not as a traceback.
    """

    def __init__(self, make_image: Callable, prompt: str, seed: int = 0, steps: int = 25,
                 guidance: float = 4.0, max_steps: int = 100, size: int = 256):
        self.make_image = make_image
        self.prompt = W.Text(value=prompt, description="prompt", layout=W.Layout(width="460px"))
        self.seed = W.IntText(value=seed, description="seed", layout=W.Layout(width="180px"))
        self.steps = W.IntSlider(value=steps, min=1, max=max_steps, description="steps")
        self.guidance = W.FloatSlider(value=guidance, min=0.0, max=15.0, step=0.5, description="guidance")
        self.button = W.Button(description="Generate", button_style="primary", icon="paint-brush")
        self.status = W.HTML("Press <b>Generate</b> (nothing runs while you type).")
        # drawn `size` px wide whatever the engine's resolution, so the dials and the picture fit a laptop screen
        self.image = W.Image(format="png", layout=W.Layout(width=f"{size}px", min_height="64px"))
        self.button.on_click(self.generate)
        self.widget = W.VBox([self.prompt, W.HBox([self.seed, self.steps]), self.guidance,
                              W.HBox([self.button, self.status]), self.image])

    def generate(self, _=None):
        self.button.disabled = True
        self.status.value = "generating..."
        try:
            image = self.make_image(self.prompt.value, self.seed.value, self.steps.value, self.guidance.value)
            self.image.value = viz.png_bytes(image)
            self.status.value = f"seed {self.seed.value}, {self.steps.value} steps, guidance {self.guidance.value}"
        except SdlabError as err:
            self.status.value = f"<span style='color:#b00'>{err}</span>"
        finally:
            self.button.disabled = False
        return self.image.value

    def _ipython_display_(self):
        display(self.widget)


def show_scrubber(frames: Sequence, captions: Sequence[str], title: str, label: str = "frame",
                  static_frames: int = 6, size: int = 256, static_size: float = 2.2,
                  static_cols: int | None = None) -> Explorer:
    """Display a scrubber (frames `size` px wide) and, below it, a static strip of `static_frames` of them
    (`static_size` inches wide each, `static_cols` to a row)."""
    import matplotlib.pyplot as plt

    explorer = scrubber(frames, captions, title, label, size=size)
    display(explorer)
    viz.frame_strip(frames, captions, static_frames, title, size=static_size, cols=static_cols)
    plt.show()
    return explorer


def show_comparer(left: Sequence, right: Sequence, captions: Sequence[str], left_title: str, right_title: str,
                  title: str, label: str = "frame", static_frames: int = 5, size: int = 256) -> Explorer:
    """Display a comparer and, below it, a static two-row figure of the same frames."""
    import matplotlib.pyplot as plt

    explorer = comparer(left, right, captions, left_title, right_title, title, label, size=size)
    display(explorer)
    idx = viz.evenly_spaced(len(captions), static_frames)
    frames = [left[i] for i in idx] + [right[i] for i in idx]
    titles = [f"{left_title}\n{captions[i]}" for i in idx] + [f"{right_title}\n{captions[i]}" for i in idx]
    viz.show_images(frames, titles, suptitle=title, cols=len(idx))
    plt.show()
    return explorer
