"""The figures' building blocks: conversions, grids, frames and overlays (no kernel needed)."""
import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from PIL import Image

from sdlab import InvalidInputError, shapes, viz

SCENE = shapes.draw([shapes.Thing("red", "circle", "left", "large")])


def test_to_pil_reads_every_form_a_notebook_holds_and_refuses_minus_one_to_one():
    as_tensor = torch.from_numpy(SCENE).permute(2, 0, 1).float() / 255  # (3, H, W) in [0, 1]
    for form in (SCENE, SCENE[None], SCENE / 255.0, as_tensor, as_tensor[None], Image.fromarray(SCENE)):
        assert np.array_equal(np.asarray(viz.to_pil(form)[0]), SCENE)
    assert len(viz.to_pil([SCENE, as_tensor])) == 2
    with pytest.raises(InvalidInputError, match=r"\[0, 1\]"):
        viz.to_pil(as_tensor * 2 - 1)  # the VAE's own range: a wrong picture if clipped, so refused


def test_upscale_and_png_bytes_keep_pixels_crisp():
    big = viz.upscale(Image.fromarray(SCENE), 256)
    assert big.size == (256, 256) and np.array_equal(np.asarray(big)[::4, ::4], SCENE)  # nearest: 4x4 blocks
    assert viz.upscale(big, 256) is big
    assert Image.open(io.BytesIO(viz.png_bytes(SCENE))).size == (256, 256)


def test_latent_channels_tile_as_a_strip_or_a_square():
    strip = viz.latents_to_rgb(torch.randn(1, 4, 8, 8), min_side=8)
    square = viz.latents_to_rgb(torch.randn(1, 4, 8, 8), min_side=8, cols=2)
    assert strip.size == (4 * 8 + 3, 8) and square.size == (2 * 8 + 1, 2 * 8 + 1)


def test_heat_overlay_blends_on_a_fixed_scale():
    uniform = torch.full((8, 8), 1 / 64)
    peaked = torch.zeros(8, 8)
    peaked[4, 1] = 1.0
    a, b = viz.heat_overlay(uniform, SCENE), viz.heat_overlay(peaked, SCENE)
    assert a.shape == b.shape == (64, 64, 3) and a.min() >= 0 and b.max() <= 1
    cell = np.s_[32:40, 8:16]  # the peaked cell, enlarged to 8x8 pixels
    assert b[cell].mean() > a[cell].mean() > b[:8, 56:].mean()  # bright where the map is, dark where it is 0
    with pytest.raises(InvalidInputError, match="uint8"):
        viz.heat_overlay(uniform, SCENE / 255)


def test_pipeline_diagram_labels_every_tensor_with_both_engines_shapes():
    tiny = {"input_ids": (1, 77), "prompt_embeds": (1, 77, 64), "latents": (1, 4, 8, 8), "image": (64, 64, 3)}
    sd15 = {"input_ids": (1, 77), "prompt_embeds": (1, 77, 768), "latents": (1, 4, 64, 64), "image": (512, 512, 3)}
    fig = viz.pipeline_diagram(tiny, sd15)
    texts = " ".join(t.get_text() for t in fig.axes[0].texts)
    for needle in ("tiny: 77x64", "SD v1.5: 77x768", "tiny: 4x8x8", "SD v1.5: 512x512x3", "VAE decoder"):
        assert needle in texts
    assert len(fig.axes[0].patches) == 4 and fig.axes[0].get_title()
    plt.close(fig)


def test_figures_have_titles_and_the_right_number_of_panels():
    fig = viz.frame_strip([SCENE] * 25, [f"step {i}" for i in range(25)], n=6, title="Denoising")
    shown = [ax for ax in fig.axes if ax.images]
    assert len(shown) == 6 and fig._suptitle.get_text() == "Denoising"
    assert [ax.get_title() for ax in shown][0] == "step 0" and shown[-1].get_title() == "step 24"
    plt.close(fig)
    fig = viz.show_latent_channels(torch.randn(1, 4, 8, 8))
    assert [ax.get_title() for ax in fig.axes if ax.images] == [f"channel {c}" for c in range(4)]
    plt.close(fig)
    strip = viz.latents_to_rgb(torch.randn(4, 8, 8), min_side=128)
    assert strip.height >= 128 and strip.width > 4 * strip.height


def test_plot_rates_draws_intervals_and_chance():
    fig, ax = plt.subplots()
    viz.plot_rates(ax, [1, 2], {"colour": [(0.5, 0.4, 0.6), (0.9, 0.8, 0.95)]}, chance={"colour": 1 / 6})
    assert ax.lines and ax.get_ylim() == (-0.03, 1.03)
    assert any(abs(line.get_ydata()[0] - 1 / 6) < 1e-9 for line in ax.lines)  # the chance level
    plt.close(fig)


def test_show_images_wraps_each_line_of_a_title_on_its_own():
    fig = viz.show_images([SCENE, SCENE], ["before\na large red circle on the left of the picture", "after"], wrap=20)
    first = [ax.get_title() for ax in fig.axes if ax.images][0]
    assert first.split("\n")[0] == "before" and len(first.split("\n")) >= 3  # the break kept, the rest wrapped
    plt.close(fig)


def test_figure_image_turns_a_chart_into_a_frame_and_closes_it():
    fig, ax = plt.subplots(figsize=(2, 1.5))
    ax.plot([0, 1], [1, 0])
    image = viz.figure_image(fig, dpi=50)
    assert image.size == (100, 75) and image.mode == "RGB" and not plt.fignum_exists(fig.number)


def test_evenly_spaced_keeps_both_ends_and_never_repeats():
    assert viz.evenly_spaced(25, 6) == [0, 5, 10, 14, 19, 24]
    assert viz.evenly_spaced(3, 6) == [0, 1, 2] and viz.evenly_spaced(1, 4) == [0]
