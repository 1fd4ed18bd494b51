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


def test_token_index_and_errors(tiny_pipe):
    tok = tiny_pipe.tokenizer
    assert attention.token_index(tok, "a large red circle", "red") == 3  # BOS, a, large, red
    with pytest.raises(ValueError, match="not a token"):
        attention.token_index(tok, "a large red circle", "blue")


def test_mass_inside():
    mask = np.zeros((64, 64), bool)
    mask[:, :16] = True
    assert attention.mass_inside(torch.ones(4, 4), mask) == pytest.approx(0.25, abs=1e-6)  # even spread: the area
    peaked = torch.zeros(4, 4)
    peaked[:, 0] = 1.0
    assert attention.mass_inside(peaked, mask) > 0.8
