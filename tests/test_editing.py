"""Inpainting by latent blending (sdlab.editing) reproduces diffusers' inpainting pipeline."""
import numpy as np
import torch
from diffusers import StableDiffusionInpaintPipeline
from PIL import Image

from sdlab import editing, images, latents, shapes


def _scene():
    things = (shapes.Thing("red", "circle", "left", "large"), shapes.Thing("blue", "square", "right", "large"))
    image = shapes.draw(things)
    mask = np.zeros(image.shape[:2], bool)
    mask[:, 32:] = True  # repaint the right half
    return image, mask


def test_inpaint_matches_diffusers_with_a_4_channel_unet(tiny_pipe):
    image, mask = _scene()
    ours = editing.inpaint(tiny_pipe, image, mask, "a large yellow triangle on the right", seed=5,
                           num_inference_steps=8, guidance_scale=4.0)
    ref_pipe = StableDiffusionInpaintPipeline(**tiny_pipe.components, requires_safety_checker=False)
    ref_pipe.set_progress_bar_config(disable=True)
    ref = ref_pipe("a large yellow triangle on the right", image=Image.fromarray(image),
                   mask_image=Image.fromarray(mask.astype(np.uint8) * 255), num_inference_steps=8,
                   guidance_scale=4.0, generator=torch.Generator().manual_seed(5), output_type="pt").images
    torch.testing.assert_close(ours, ref, atol=1e-4, rtol=1e-4)


def test_empty_mask_keeps_the_original(tiny_pipe):
    image, mask = _scene()
    out = editing.inpaint(tiny_pipe, image, np.zeros_like(mask), "a green circle", seed=1, num_inference_steps=4)
    x = images.images_to_tensor(image, (64, 64), resample="bicubic")
    image_latents = tiny_pipe.vae.encode(x).latent_dist.sample(torch.Generator().manual_seed(1))
    expected = latents.decode(tiny_pipe, image_latents * tiny_pipe.vae.config.scaling_factor)
    torch.testing.assert_close(out, expected, atol=1e-4, rtol=1e-4)
