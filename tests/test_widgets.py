"""Widgets swap precomputed frames; their errors are sentences, not tracebacks (no browser needed here)."""
import matplotlib

matplotlib.use("Agg")
import numpy as np
import pytest

from sdlab import InvalidInputError, shapes, viz, widgets
from sdlab.explorer import Explorer

FRAMES = [shapes.draw([shapes.Thing(c, "circle", "left", "large")]) for c in ("red", "green", "blue")]


def test_a_scrubber_is_one_slider_with_a_caption_per_frame():
    s = widgets.scrubber(FRAMES, ["red", "green", "blue"], title="t", label="step")
    assert [d.name for d in s.dials] == ["step"] and s.shape == (3,)
    assert s.pictures_at(2) == [viz.png_bytes(FRAMES[2], min_side=1)] and s.captions[2] == "blue"
    assert "blue" in s._repr_html_()


def test_a_comparer_moves_both_sides_together():
    c = widgets.comparer(FRAMES, FRAMES[::-1], ["a", "b", "c"], "left", "right")
    assert c.panes == ["left", "right"]
    assert c.pictures_at(0) == [viz.png_bytes(FRAMES[0], min_side=1), viz.png_bytes(FRAMES[2], min_side=1)]
    assert len(c.pictures) == 3  # a picture both sides show is stored once


@pytest.mark.parametrize("make", [
    lambda: widgets.scrubber(FRAMES, ["only one"]),
    lambda: widgets.scrubber([], []),
    lambda: widgets.comparer(FRAMES, FRAMES[:2], ["a", "b", "c"], "l", "r"),
])
def test_mismatched_frames_and_captions_are_refused(make):
    with pytest.raises(InvalidInputError):
        make()


def test_generate_panel_shows_the_image_or_the_error_sentence():
    calls = []

    def make_image(prompt, seed, steps, guidance):
        calls.append((prompt, seed, steps, guidance))
        if steps > 50:
            raise InvalidInputError("too many steps for this demo")
        return FRAMES[seed % 3]

    panel = widgets.GeneratePanel(make_image, "a red circle", seed=1, steps=10, guidance=4.0)
    assert panel.generate() == viz.png_bytes(FRAMES[1]) and "seed 1" in panel.status.value
    assert panel.image.layout.width == "256px"  # drawn at a fixed size, whatever the engine's resolution
    panel.steps.value = 60
    before = panel.image.value
    panel.generate()
    assert "too many steps" in panel.status.value and panel.image.value == before
    assert not panel.button.disabled and calls[-1] == ("a red circle", 1, 60, 4.0)


def test_show_functions_also_draw_the_static_figure(monkeypatch):
    shown = []
    monkeypatch.setattr(widgets, "display", shown.append)
    import matplotlib.pyplot as plt

    monkeypatch.setattr(plt, "show", lambda: shown.append(plt.gcf()))
    widgets.show_scrubber(FRAMES, ["a", "b", "c"], title="strip", static_frames=3)
    assert isinstance(shown[0], Explorer) and shown[0].shape == (3,)
    assert len([a for a in shown[1].axes if a.images]) == 3
    shown.clear()
    widgets.show_comparer(FRAMES, FRAMES, ["a", "b", "c"], "l", "r", title="two rows", static_frames=2)
    assert isinstance(shown[0], Explorer) and len(shown[0].panes) == 2
    assert len([a for a in shown[1].axes if a.images]) == 4
    assert np.asarray(FRAMES[0]).dtype == np.uint8
    plt.close("all")
