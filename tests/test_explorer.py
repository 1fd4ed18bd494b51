"""Explorers: every setting of the dials maps to the right pictures, stored once; bad dials are sentences.

What the page's script does with this table is tested in a real browser (tests/test_browser.py).
"""
import json
import re

import matplotlib

matplotlib.use("Agg")
import numpy as np
import pytest

from sdlab import InvalidInputError, shapes, viz
from sdlab.explorer import Dial, Explorer

COLOURS, PLACES = ("red", "green", "blue"), ("left", "right", "top", "bottom")
IMAGES = {(c, p): shapes.draw([shapes.Thing(c, "circle", p, "large")]) for c in COLOURS for p in PLACES}


def make(**kw):
    return Explorer("colour x place", [Dial("colour", COLOURS, "buttons"), Dial("place", PLACES)],
                    frame=lambda i, j: (IMAGES[COLOURS[i], PLACES[j]], IMAGES[COLOURS[i], "left"]),
                    panes=["drawn", "on the left"], **kw)


def page_data(explorer):
    page = explorer._repr_html_()
    blob = re.search(r'<script type="application/json" id="[^"]+">(.*?)</script>', page, re.S).group(1)
    return page, json.loads(blob)


def test_each_setting_shows_its_own_pictures_and_shared_pictures_are_stored_once():
    e = make()
    assert e.shape == (3, 4) and len(e.table) == 12
    assert len(e.pictures) == 12  # 12 distinct drawings; the second pane only repeats the first's "left" ones
    assert e.pictures_at(2, 1) == [viz.png_bytes(IMAGES["blue", "right"], min_side=1),
                                  viz.png_bytes(IMAGES["blue", "left"], min_side=1)]
    assert e.captions[e.index(2, 1)] == "colour blue, place right"


def test_the_page_holds_the_table_the_script_reads_in_row_major_order():
    e = make()
    page, data = page_data(e)
    assert data["shape"] == [3, 4] and data["table"] == e.table and len(data["pictures"]) == len(e.pictures)
    for i in range(3):
        for j in range(4):
            assert e.index(i, j) == i * 4 + j
    assert page.count('type="radio"') == 3 and page.count('type="range"') == 1 and "sdx-play" in page
    assert 'data-index="0"' in page and e.id in page


def test_pictures_are_drawn_at_a_fixed_size_and_pixelated():
    page, _ = page_data(make(size=320))
    assert page.count('width="320" height="320"') == 2 and "image-rendering:pixelated" in page


def test_the_start_values_choose_the_first_picture():
    e = Explorer("x", [Dial("place", PLACES, start=2)], frame=lambda j: IMAGES["red", PLACES[j]])
    page, _ = page_data(e)
    assert f'data-index="{e.index(2)}"' in page and 'value="2"' in page


def test_titles_labels_and_captions_are_escaped():
    e = Explorer("<b>", [Dial("w", ["<i>"], "menu")], frame=lambda i: IMAGES["red", "left"], caption=lambda i: "a<b")
    page, data = page_data(e)
    assert "<b>" not in page.split("<script")[0] and data["captions"] == ["a<b"]


def test_the_static_figure_is_a_grid_over_two_dials():
    import matplotlib.pyplot as plt

    fig = make().figure(rows=0, cols=1)
    assert len([a for a in fig.axes if a.images]) == 12
    plt.close("all")


@pytest.mark.parametrize("bad", [
    lambda: Explorer("x", [], frame=lambda: None),
    lambda: Dial("w", []),
    lambda: Dial("w", ["a"], kind="knob"),
    lambda: Dial("w", ["a", "b"], start=2),
    lambda: Explorer("x", [Dial("w", ["a"])], frame=lambda i: (IMAGES["red", "left"],) * 2),
    lambda: make(size=10),
    lambda: make().index(3, 0),
])
def test_bad_dials_sizes_and_frames_are_refused_with_a_sentence(bad):
    with pytest.raises(InvalidInputError):
        bad()


def test_tensors_and_float_arrays_are_accepted_as_frames():
    import torch

    e = Explorer("x", [Dial("k", ["a", "b"])], frame=lambda i: torch.rand(3, 8, 8) if i else np.zeros((8, 8, 3)))
    assert len(e.pictures) == 2 and e.sizes == [(256, 256)]


def test_large_frames_are_stored_no_larger_than_drawn_and_as_jpeg():
    import io

    from PIL import Image

    photo = np.random.default_rng(0).integers(0, 255, (512, 512, 3), dtype=np.uint8)
    e = Explorer("x", [Dial("k", ["a"])], frame=lambda i: photo, size=256)
    stored = Image.open(io.BytesIO(e.pictures[0]))
    assert e.mimes == ["image/jpeg"] and stored.size == (256, 256) and e.sizes == [(256, 256)]
    assert make().mimes[0] == "image/png"  # the shapes world's 64x64 frames stay lossless
