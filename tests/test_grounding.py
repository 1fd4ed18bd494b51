"""The grounding loss (sdlab.grounding): the right tokens get the right masks, and the loss reads mass inside."""
import numpy as np
import pytest
import torch

from sdlab import attention, grounding, shapes, tiny


@pytest.fixture(scope="module")
def tokenizer():
    return tiny.load_tokenizer()


def test_cell_coverage_is_the_area_fraction_per_cell():
    mask = np.zeros((64, 64), bool)
    mask[:8, :4] = True  # half of the top-left cell
    mask[8:16, 8:16] = True  # all of cell (1, 1)
    cov = grounding.cell_coverage(mask, (8, 8))
    assert cov.shape == (8, 8) and cov[0, 0] == 0.5 and cov[1, 1] == 1.0 and cov.sum() == 1.5
    with pytest.raises(ValueError, match="equal cells"):
        grounding.cell_coverage(mask, (7, 7))


def test_object_word_positions_single_and_pair(tokenizer):
    red = shapes.Thing("red", "circle", "left", "large")
    blue = shapes.Thing("blue", "square", "right", "small")
    # BOS a large red circle on the left: size 2, colour 3, shape 4; "left" is not an object word
    assert grounding.object_word_positions(tokenizer, red.prompt(), [red]) == [[2, 3, 4]]
    caption = "a red circle and a red square"  # the same colour twice: each object keeps its own
    same = shapes.Thing("red", "square", "right", "small")
    assert grounding.object_word_positions(tokenizer, caption, [red, same]) == [[2, 3], [6, 7]]
    swapped = "a blue square and a red circle"
    assert grounding.object_word_positions(tokenizer, swapped, [blue, red]) == [[2, 3], [6, 7]]


def test_scene_masks_cover_what_was_drawn():
    scene = shapes.random_scene(np.random.default_rng(1), p_two=1.0)
    assert len(scene.masks) == 2 and not (scene.masks[0] & scene.masks[1]).any()
    drawn = np.zeros((64, 64), bool)
    for thing, mask in zip(scene.things, scene.masks, strict=True):
        assert (scene.image[mask] == shapes.COLOURS[thing.colour]).all()
        drawn |= mask
    np.testing.assert_array_equal(drawn, shapes.foreground(scene.image))


def test_object_token_masks_and_token_loss(tokenizer):
    red = shapes.Thing("red", "circle", "left", "large")
    masks = torch.zeros(2, 2, 8, 8)
    masks[0, 0, :, :2] = 1.0  # the object fills the two left columns
    target, supervised = grounding.object_token_masks(tokenizer, [red.prompt(), ""], [[red], [red]], masks)
    assert supervised[0].nonzero().flatten().tolist() == [2, 3, 4] and not supervised[1].any()
    assert torch.equal(target[0, 3], masks[0, 0].flatten())
    # attention that puts all of every token's mass inside the mask scores 0; uniform scores (1 - 2/8)^2
    inside = masks[0, 0].flatten()
    perfect = torch.zeros(2, 64, 77)
    perfect[:, inside.bool()] = 1 / 77
    perfect[:, ~inside.bool(), 0] = 1.0  # the background reads the BOS token only
    assert grounding.token_loss(perfect, target, supervised).item() == pytest.approx(0.0, abs=1e-6)
    uniform = torch.full((2, 64, 77), 1 / 77)
    assert grounding.token_loss(uniform, target, supervised).item() == pytest.approx((1 - 2 / 8) ** 2)
    assert grounding.token_loss(uniform, target, torch.zeros_like(supervised)).item() == 0.0


def test_grounding_maps_keep_gradients_of_the_8x8_layers(tiny_pipe):
    maps = grounding.GroundingMaps((8, 8))
    ids = tiny_pipe.tokenizer(["a red circle"], padding="max_length", max_length=77, return_tensors="pt").input_ids
    embeds = tiny_pipe.text_encoder(ids)[0]
    latents = torch.randn(1, 4, 8, 8, requires_grad=True)
    with attention.capture_cross_attention(tiny_pipe.unet, maps):
        tiny_pipe.unet(latents, 500, encoder_hidden_states=embeds)
    full = ("down_blocks.0.", f"up_blocks.{len(tiny_pipe.unet.up_blocks) - 1}.")  # the blocks at the latents' grid
    assert len(maps.layers) == sum(n.startswith(full) for n in attention.cross_attention_names(tiny_pipe.unet)) > 0
    probs = maps.mean()
    assert probs.shape == (1, 64, 77) and maps.layers == []
    torch.testing.assert_close(probs.sum(-1), torch.ones(1, 64))
    probs[..., 3].sum().backward()
    assert latents.grad is not None and latents.grad.abs().sum() > 0
