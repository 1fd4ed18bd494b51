"""Intervals (sdlab.stats) and the judge's per-image hits (shapes.hits)."""
import numpy as np
import pytest

from sdlab import sampling, shapes, stats, viz


def test_wilson_interval_known_values_and_errors():
    low, high = stats.wilson_interval(27, 32)
    # by hand: 0.8069 -+ 0.1245
    assert low == pytest.approx(0.682, abs=1e-3) and high == pytest.approx(0.931, abs=1e-3)
    assert stats.wilson_interval(0, 10)[0] == 0.0 and stats.wilson_interval(10, 10)[1] == pytest.approx(1.0)
    assert stats.rate([True, False, True, True])[0] == 0.75
    with pytest.raises(ValueError):
        stats.wilson_interval(5, 4)


def test_mean_interval_shrinks_with_more_values():
    rng = np.random.default_rng(0)
    _, few = stats.mean_interval(rng.normal(size=10))
    _, many = stats.mean_interval(rng.normal(size=1000))
    assert many < few / 5


def test_hits_judges_drawn_scenes_right_and_chance_levels():
    things = [(shapes.Thing("red", "circle", "left", "large"),), (shapes.Thing("blue", "square", "top", "small"),)]
    images = np.stack([shapes.draw(t) for t in things])
    found = shapes.hits(things, images)
    assert all(found[a].tolist() == [True, True] for a in (*shapes.ATTRIBUTES, "all"))
    wrong = shapes.hits(things[::-1], images)
    assert not wrong["colour"].any() and not wrong["all"].any()
    assert shapes.CHANCE["colour"] == pytest.approx(1 / 6) and shapes.CHANCE["all"] == pytest.approx(1 / 180)


def test_image_grid_tiles_row_by_row():
    images = np.stack([np.full((4, 4, 3), k, np.uint8) for k in range(5)])
    grid = viz.image_grid(images, cols=3, gap=1)
    assert grid.shape == (9, 14, 3)
    assert grid[0, 0, 0] == 0 and grid[0, 5, 0] == 1 and grid[5, 0, 0] == 3
    assert grid[5, 10, 0] == 255  # the last tile is empty


def test_unet_calls_counts_timesteps_per_scheduler():
    from diffusers import DDIMScheduler, PNDMScheduler

    from sdlab import sdshaped, tiny
    assert sampling.unet_calls(DDIMScheduler(**tiny.SCHEDULE), 10) == 10
    assert sampling.unet_calls(PNDMScheduler.from_config(sdshaped.SD15_SCHEDULER), 10) == 11  # SD v1.5's default
