"""Cross-attention capture (sdlab.attention): it watches without changing anything, and its maps add up."""
import numpy as np
import pytest
import torch

from sdlab import attention, sampling


def test_capture_leaves_images_unchanged_and_restores_processors(tiny_pipe):
    before = {name: type(p) for name, p in tiny_pipe.unet.attn_processors.items()}
    prompt = "a large red circle on the left"
    ref = sampling.text_to_image(tiny_pipe, prompt, seed=3, num_inference_steps=6, guidance_scale=4.0)
    store = attention.AttentionStore(map_size=(tiny_pipe.unet.config.sample_size,) * 2)
    with attention.capture_cross_attention(tiny_pipe.unet, store):
        ours = sampling.text_to_image(tiny_pipe, prompt, seed=3, num_inference_steps=6, guidance_scale=4.0)
    torch.testing.assert_close(ours, ref, atol=1e-4, rtol=1e-4)
    assert {name: type(p) for name, p in tiny_pipe.unet.attn_processors.items()} == before


def test_maps_have_one_entry_per_step_and_sum_to_one_over_tokens(tiny_pipe):
    store = attention.AttentionStore(map_size=(8, 8))
    with attention.capture_cross_attention(tiny_pipe.unet, store):
        sampling.text_to_image(tiny_pipe, ["a red circle", "a blue square"], seed=0, num_inference_steps=4,
                               guidance_scale=4.0, height=64, width=64)
    maps = store.token_maps()
    assert maps.shape == (4, 4, 77, 8, 8)  # steps, 2 x batch (guidance), tokens, h, w
    assert store.num_layers == len(attention.cross_attention_names(tiny_pipe.unet))
    torch.testing.assert_close(maps.sum(2), torch.ones(4, 4, 8, 8))


def test_mass_inside():
    mask = np.zeros((64, 64), bool)
    mask[:, :16] = True
    assert attention.mass_inside(torch.ones(4, 4), mask) == pytest.approx(0.25, abs=1e-6)  # even spread: the area
    peaked = torch.zeros(4, 4)
    peaked[:, 0] = 1.0
    assert attention.mass_inside(peaked, mask) > 0.8


def test_uniform_ratio_is_one_for_even_attention_and_rejects_an_empty_mask():
    mask = np.zeros((64, 64), bool)
    mask[8:24, 8:24] = True                            # exactly 2x2 cells of an 8x8 grid
    assert attention.uniform_ratio(torch.ones(8, 8), mask) == pytest.approx(1.0)
    peaked = torch.zeros(8, 8)
    peaked[1:3, 1:3] = 1.0                             # all attention on the masked cells
    assert attention.uniform_ratio(peaked, mask) == pytest.approx(1 / mask.mean())
    with pytest.raises(ValueError, match="empty"):
        attention.uniform_ratio(torch.ones(8, 8), np.zeros((64, 64), bool))


def test_nearest_upsampling_keeps_each_cell_flat():
    m = torch.arange(4.0).reshape(2, 2)
    up = attention.upsample(m, (4, 4))
    assert torch.equal(up[:2, :2], torch.full((2, 2), up[0, 0].item())) and up.sum().item() == pytest.approx(1.0)


def test_layer_size_keeps_only_the_full_grid_layers(tiny_pipe):
    grid = (tiny_pipe.unet.config.sample_size,) * 2
    store = attention.AttentionStore(grid, layer_size=grid)
    with attention.capture_cross_attention(tiny_pipe.unet, store):
        sampling.text_to_image(tiny_pipe, "a red circle", seed=0, num_inference_steps=3, guidance_scale=4.0)
    assert len(store.layer_sizes) > 1 and grid in store.layer_sizes  # the UNet attends at more than one grid
    maps = store.token_maps()
    assert maps.shape == (3, 2, 77, *grid)
    torch.testing.assert_close(maps.sum(2), torch.ones(3, 2, *grid))
    with (pytest.raises(ValueError, match="no cross-attention layer"),
          attention.capture_cross_attention(tiny_pipe.unet, attention.AttentionStore(grid, layer_size=(3, 3)))):
        sampling.text_to_image(tiny_pipe, "a red circle", seed=0, num_inference_steps=1, guidance_scale=4.0)


def test_object_attention_reports_every_word_kind(tiny_pipe):
    from sdlab import shapes
    things = [shapes.Thing("red", "circle", "left", "large"), shapes.Thing("blue", "square", "right", "large")]
    out = attention.object_attention(tiny_pipe, things, seed=0, num_inference_steps=5)
    assert set(out["ratios"]) == set(attention.WORD_KINDS) and out["images"].shape == (2, 64, 64, 3)
    assert all(len(v) == len(out["kept"]) for v in out["ratios"].values())
    assert out["maps"].shape == (2, 77, 8, 8)
    word = attention.word_tokens(tiny_pipe.tokenizer, things[0])
    assert word["colour"] == 3 and word["end"] == len(tiny_pipe.tokenizer(things[0].prompt()).input_ids) - 1
