"""Every lesson helper a notebook calls rejects what a learner might get wrong, with a sentence naming the fix.

Each case below was once accepted silently or failed deep inside torch or diffusers.
"""
import math

import numpy as np
import pytest
import torch

from sdlab import (
    InvalidInputError,
    SdlabError,
    attention,
    checks,
    editing,
    finetune,
    images,
    latents,
    sampling,
    schedule,
    shapes,
    text,
)

AB = schedule.alphas_cumprod(schedule.make_betas("scaled_linear"))


# --------------------------------------------------------------------------- the shared checks

@pytest.mark.parametrize("value", [0, -3, 2.5, True, "4", None])
def test_count_refuses_what_is_not_a_whole_number_of_at_least_one(value):
    with pytest.raises(InvalidInputError, match="whole number of at least 1"):
        checks.count(value, "num_inference_steps", example=25)


@pytest.mark.parametrize("value", [math.nan, math.inf, -1.0, "7.5", None, True])
def test_number_refuses_nan_infinity_out_of_range_and_non_numbers(value):
    with pytest.raises(InvalidInputError, match="finite number >= 0"):
        checks.number(value, "guidance_scale", low=0)
    assert checks.number(np.float32(7.5), "guidance_scale", low=0) == 7.5


@pytest.mark.parametrize("t", [-1, 1000, torch.tensor([0, 1000]), 2.5, torch.tensor([True])])
def test_timesteps_refuses_what_would_wrap_or_round(t):
    with pytest.raises(InvalidInputError, match="0|whole"):
        checks.timesteps(t, 1000)
    assert checks.timesteps(torch.tensor([0.0, 999.0]), 1000).tolist() == [0, 999]


def test_every_check_is_an_sdlab_error_and_a_value_error():
    with pytest.raises(SdlabError):
        checks.choice("cosine2", "schedule", schedule.SCHEDULES)
    assert issubclass(InvalidInputError, ValueError)  # old `except ValueError` code keeps working


# --------------------------------------------------------------------------- schedule (notebook 02)

def test_a_negative_timestep_is_refused_not_wrapped_to_999():
    x0, noise = torch.zeros(1, 4, 8, 8), torch.randn(1, 4, 8, 8)
    with pytest.raises(InvalidInputError, match="wraps"):
        schedule.q_sample(x0, noise, -1, AB)
    with pytest.raises(InvalidInputError, match="0 .* to 999"):
        schedule.q_moments(x0, 1000, AB)
    with pytest.raises(InvalidInputError, match="t run"):
        schedule.q_step(x0, noise, 1000, schedule.make_betas("linear"))
    with pytest.raises(InvalidInputError, match="one shape"):
        schedule.q_sample(x0, noise[..., :4], 10, AB)
    with pytest.raises(InvalidInputError, match="unknown beta schedule"):
        schedule.make_betas("cosine2")


# --------------------------------------------------------------------------- images and the VAE (notebook 04)

def test_images_convert_only_from_the_right_range():
    scene = shapes.draw([shapes.Thing("red", "circle", "left", "large")])
    with pytest.raises(InvalidInputError, match="uint8"):
        images.images_to_tensor(scene.astype(np.float32) / 255)
    with pytest.raises(InvalidInputError, match=r"\[0, 1\]"):
        images.to_uint8(torch.full((1, 3, 8, 8), -0.5))  # a [-1, 1] image passed as if it were [0, 1]
    with pytest.raises(InvalidInputError, match="NaN"):
        images.to_uint8(np.full((8, 8, 3), np.nan))
    with pytest.raises(InvalidInputError, match="uint8 already"):
        images.to_uint8(scene)
    with pytest.raises(InvalidInputError, match="resample"):
        images.images_to_tensor(scene, 32, resample="bilinear")
    back = images.to_uint8(images.images_to_tensor(scene) / 2 + 0.5)
    assert back.dtype == np.uint8 and np.array_equal(back[0], scene)  # the round trip is exact


def test_encode_refuses_sizes_the_vae_cannot_halve_three_times_and_values_outside_minus_one_one(tiny_pipe):
    with pytest.raises(InvalidInputError, match="63x63.*divide by 8"):
        latents.encode(tiny_pipe, torch.zeros(1, 3, 63, 63))
    with pytest.raises(InvalidInputError, match=r"x \* 2 - 1"):
        latents.encode(tiny_pipe, torch.full((1, 3, 64, 64), 200.0))
    with pytest.raises(InvalidInputError, match=r"\(n, 3, H, W\)"):
        latents.encode(tiny_pipe, torch.zeros(3, 64, 64))


def test_decode_psnr_and_slerp_check_their_tensors(tiny_pipe):
    with pytest.raises(InvalidInputError, match=r"\(n, 4, h, w\).*latents\[i:i \+ 1\]"):
        latents.decode(tiny_pipe, torch.zeros(4, 8, 8))
    with pytest.raises(InvalidInputError, match="NaN"):
        latents.decode(tiny_pipe, torch.full((1, 4, 8, 8), math.nan))
    with pytest.raises(InvalidInputError, match="non-zero"):
        latents.decode(tiny_pipe, torch.zeros(1, 4, 8, 8), scaling_factor=0)
    with pytest.raises(InvalidInputError, match="one shape"):
        latents.psnr(torch.zeros(1, 3, 8, 8), torch.zeros(2, 3, 8, 8))
    with pytest.raises(InvalidInputError, match="one shape"):
        latents.slerp(torch.zeros(1, 4), torch.zeros(1, 5), 0.5)


# --------------------------------------------------------------------------- sampling by hand (notebooks 03, 05)

@pytest.mark.parametrize("kwargs, needle", [
    ({"height": 30}, "height=30 is not a positive multiple of 8.*Try height=24 or height=32"),
    ({"num_inference_steps": 0}, "num_inference_steps must be a whole number of at least 1"),
    ({"guidance_scale": math.nan}, "guidance_scale must be a finite number"),
    ({"width": 1024}, "too large"),
])
def test_text_to_image_checks_its_call_like_generate(tiny_pipe, kwargs, needle):
    with pytest.raises(InvalidInputError, match=needle):
        sampling.text_to_image(tiny_pipe, "a red circle", **kwargs)


def test_prompt_helpers_check_their_prompts(tiny_pipe):
    with pytest.raises(InvalidInputError, match="string or a non-empty list"):
        sampling.text_to_image(tiny_pipe, 42)
    with pytest.raises(InvalidInputError, match="one negative prompt, or one per prompt"):
        sampling.encode_prompt(tiny_pipe, ["a", "b"], ["x", "y", "z"])
    with pytest.raises(InvalidInputError, match="whole number"):
        sampling.unet_calls(tiny_pipe.scheduler, 0)
    with pytest.raises(InvalidInputError, match="multiple of 8"):
        sampling.initial_latents(tiny_pipe, 1, 60, 64, torch.Generator().manual_seed(0))


# --------------------------------------------------------------------------- inpainting (notebook 08)

def test_inpaint_refuses_a_mask_that_does_not_cover_the_image(tiny_pipe):
    scene = shapes.draw([shapes.Thing("red", "circle", "left", "large")])
    with pytest.raises(InvalidInputError, match="pixel for pixel"):
        editing.inpaint(tiny_pipe, scene, np.ones((32, 32), bool), "a blue square")
    with pytest.raises(InvalidInputError, match="uint8 RGB"):
        editing.inpaint(tiny_pipe, scene / 255, np.ones((64, 64), bool), "a blue square")
    with pytest.raises(InvalidInputError, match="whole number"):
        editing.inpaint(tiny_pipe, scene, np.ones((64, 64), bool), "a blue square", num_inference_steps=0)
    with pytest.raises(InvalidInputError, match="2-D"):
        editing.latent_mask(np.ones((64, 64, 3)), (8, 8))


# --------------------------------------------------------------------------- the judge, text, attention, fine-tuning

def test_the_judge_refuses_float_images_instead_of_reading_them_as_black():
    scene = shapes.draw([shapes.Thing("red", "circle", "left", "large")])
    with pytest.raises(InvalidInputError, match="to_uint8"):
        shapes.judge(scene / 255)
    with pytest.raises(InvalidInputError, match="one image at a time"):
        shapes.judge(np.stack([scene, scene]))
    assert shapes.judge(scene)[0].shape == "circle"


def test_text_helpers_check_words_and_weights(tiny_pipe):
    tok = tiny_pipe.tokenizer
    with pytest.raises(InvalidInputError, match="does not occur"):
        text.token_position(tok, "a large red circle", "blue")
    with pytest.raises(InvalidInputError, match="one token"):
        text.token_position(tok, "a large red circle", "red circle")
    e = torch.zeros(1, 77, 64)
    with pytest.raises(InvalidInputError, match="finite number"):
        text.mix(e, e, [0.0, math.nan])
    with pytest.raises(InvalidInputError, match="one shape"):
        text.mix(e, torch.zeros(1, 77, 32), [0.5])
    with pytest.raises(InvalidInputError, match="'eos' or 'mean'"):
        text.pool(e, torch.zeros(1, 77, dtype=torch.long), "max")


def test_attention_maps_and_masks_must_be_one_word_and_one_image():
    with pytest.raises(InvalidInputError, match=r"maps\[k\]"):
        attention.mass_inside(torch.ones(77, 8, 8), np.ones((64, 64), bool))
    with pytest.raises(InvalidInputError, match="empty"):
        attention.uniform_ratio(torch.ones(8, 8), np.zeros((64, 64), bool))


def test_fine_tuning_checks_its_settings(tiny_pipe):
    z, ids = torch.zeros(4, 4, 8, 8), torch.zeros(3, 77, dtype=torch.long)
    with pytest.raises(InvalidInputError, match="one caption per latent"):
        finetune.train_steps(tiny_pipe, [], z, ids, steps=1, lr=1e-3)
    with pytest.raises(InvalidInputError, match="lr must be a finite number"):
        finetune.train_steps(tiny_pipe, [], z, ids[:1].repeat(4, 1), steps=1, lr=math.nan)
    with pytest.raises(InvalidInputError, match="rank"):
        finetune.add_lora(tiny_pipe.unet, rank=0)
