"""sdlab.latents: the VAE round trip, interpolation, PSNR and FLOP counting. CPU, offline."""
import math

import numpy as np
import pytest
import torch

from sdlab import gpubench, latents, shapes

# --------------------------------------------------------------------------- images and the VAE

def test_images_to_tensor_range_shape_and_resize():
    images, _ = shapes.batch(shapes.sample(3, seed=5))
    x = latents.images_to_tensor(images)
    assert x.shape == (3, 3, 64, 64) and x.min() >= -1 and x.max() <= 1
    torch.testing.assert_close(x[0, :, 0, 0], torch.tensor(shapes.BACKGROUND) / 127.5 - 1)
    big = latents.images_to_tensor(images[0], size=128)  # one (H, W, 3) image, enlarged
    assert big.shape == (1, 3, 128, 128)
    torch.testing.assert_close(big[0, :, ::2, ::2], x[0])  # nearest neighbour: flat colours stay flat
    with pytest.raises(ValueError, match="uint8"):
        latents.images_to_tensor(images.astype(np.float32))


def test_encode_decode_shapes_and_48x(tiny_pipe):
    images, _ = shapes.batch(shapes.sample(4, seed=1))
    z = latents.encode(tiny_pipe, images)
    f = tiny_pipe.vae_scale_factor
    assert z.shape == (4, tiny_pipe.unet.config.in_channels, 64 // f, 64 // f)
    assert latents.compression_factor((3, 64, 64), z.shape[1:]) == 48
    assert latents.compression_factor((1, 3, 512, 512), (1, 4, 64, 64)) == 48
    raw = latents.encode(tiny_pipe, images, scaled=False)
    torch.testing.assert_close(z, raw * tiny_pipe.vae.config.scaling_factor)
    out = latents.decode(tiny_pipe, z, batch_size=3)  # two batches
    assert out.shape == (4, 3, 64, 64) and out.dtype == torch.float32 and out.device.type == "cpu"
    assert out.min() >= 0 and out.max() <= 1


def test_decode_matches_the_vae_by_hand_and_honours_scaling_factor(tiny_pipe):
    z = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    sf = tiny_pipe.vae.config.scaling_factor
    with torch.no_grad():  # as StableDiffusionPipeline: decode latents / scaling_factor, [-1, 1] -> [0, 1]
        by_hand = (tiny_pipe.vae.decode(z / sf).sample / 2 + 0.5).clamp(0, 1)
    torch.testing.assert_close(latents.decode(tiny_pipe, z), by_hand)
    torch.testing.assert_close(latents.decode(tiny_pipe, z, scaling_factor=2 * sf),
                               latents.decode(tiny_pipe, z / 2))
    with pytest.raises(ValueError, match="non-zero"):
        latents.decode(tiny_pipe, z, scaling_factor=0)


def test_encode_with_generator_samples_and_is_reproducible(tiny_pipe):
    images, _ = shapes.batch(shapes.sample(2, seed=3))
    a = latents.encode(tiny_pipe, images, generator=torch.Generator().manual_seed(1))
    b = latents.encode(tiny_pipe, images, generator=torch.Generator().manual_seed(1))
    mean = latents.encode(tiny_pipe, images)
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a, mean)


# --------------------------------------------------------------------------- interpolation

def test_slerp_endpoints_norm_and_lerp_fallback():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(3, 4, 8, 8, generator=g), torch.randn(3, 4, 8, 8, generator=g)
    torch.testing.assert_close(latents.slerp(a, b, 0.0), a, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(latents.slerp(a, b, 1.0), b, atol=1e-5, rtol=1e-5)
    # equal norms stay equal along the arc; lerp's midpoint of near-orthogonal vectors shrinks ~1/sqrt(2)
    b_same = b / b.flatten(1).norm(dim=1).view(-1, 1, 1, 1) * a.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
    mid = latents.slerp(a, b_same, 0.5)
    torch.testing.assert_close(mid.flatten(1).norm(dim=1), a.flatten(1).norm(dim=1), rtol=1e-4, atol=1e-4)
    ratio = latents.lerp(a, b_same, 0.5).flatten(1).norm(dim=1) / a.flatten(1).norm(dim=1)
    assert torch.all((ratio - 1 / math.sqrt(2)).abs() < 0.1)
    # a per-sample t, and parallel inputs fall back to lerp (no division by sin 0)
    t = torch.tensor([0.0, 0.5, 1.0])
    out = latents.slerp(a, b, t)
    torch.testing.assert_close(out[0], a[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out[2], b[2], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(latents.slerp(a, 2 * a, 0.5), 1.5 * a)
    v = torch.tensor([1.0, 0.0])
    torch.testing.assert_close(latents.slerp(v, torch.tensor([0.0, 1.0]), 0.5), torch.tensor([0.5, 0.5]).sqrt())
    with pytest.raises(ValueError, match="one shape"):
        latents.slerp(a, b[:1], 0.5)


# --------------------------------------------------------------------------- quality

def test_psnr_known_values():
    ref = torch.zeros(2, 3, 4, 4)
    img = ref.clone()
    img[0] += 0.1  # MSE 0.01 -> 20 dB
    img[1] += 0.01  # MSE 1e-4 -> 40 dB
    torch.testing.assert_close(latents.psnr(img, ref), torch.tensor([20.0, 40.0]))
    torch.testing.assert_close(latents.psnr(img * 255, ref, data_range=255.0), torch.tensor([20.0, 40.0]))
    assert torch.isinf(latents.psnr(ref, ref)).all()


def test_thumbnail_baseline_keeps_flat_images_and_blurs_edges():
    flat = torch.full((1, 3, 64, 64), 0.3)
    torch.testing.assert_close(latents.thumbnail_baseline(flat), flat)
    images, _ = shapes.batch(shapes.sample(2, seed=0))
    x = latents.images_to_tensor(images) / 2 + 0.5
    thumb = latents.thumbnail_baseline(x, 8)
    assert thumb.shape == x.shape and latents.psnr(thumb, x).max() < 40


# --------------------------------------------------------------------------- compute

def test_count_flops_of_a_linear_layer():
    layer = torch.nn.Linear(10, 20, bias=False)
    assert latents.count_flops(layer, torch.randn(3, 10)) == 2 * 3 * 10 * 20


def test_unet_flops_latent_vs_pixel_space(tiny_pipe):
    cfg = tiny_pipe.unet.config
    on_latents = latents.unet_flops(cfg)
    on_pixels = latents.unet_flops(cfg, sample_size=64, in_channels=3)
    # convolutions scale with the area (8x8 -> 64x64 is 64x); the tiny UNet also self-attends at its full
    # grid, whose cost grows with the square of the positions: more than 64x, less than 64 x 64
    assert 64 < on_pixels / on_latents < 64 * 64
    sd15 = gpubench.sd15_unet_config()  # SD v1.5 self-attends on 64x64 latents: far more than 64x
    assert latents.unet_flops(sd15, sample_size=512, in_channels=3) / latents.unet_flops(sd15) > 500
    assert latents.unet_flops(cfg, batch=2) == 2 * on_latents
    # counting on the meta device agrees with counting a real call that spells attention out as
    # matrix products (the CPU's fused attention kernel has no FLOP formula in torch)
    from diffusers.models.attention_processor import AttnProcessor

    saved = tiny_pipe.unet.attn_processors
    tiny_pipe.unet.set_attn_processor(AttnProcessor())
    try:
        real = latents.count_flops(tiny_pipe.unet, torch.randn(1, 4, 8, 8), torch.tensor([500]),
                                   encoder_hidden_states=torch.randn(1, 77, cfg.cross_attention_dim))
    finally:
        tiny_pipe.unet.set_attn_processor(dict(saved))  # the ones it had, not fresh ones (set_ empties its dict)
    assert real == on_latents
    assert tiny_pipe.unet.attn_processors == saved
    with torch.no_grad():
        decoded_for_real = latents.count_flops(tiny_pipe.vae.decode, torch.randn(1, 4, 8, 8))
    assert latents.vae_decoder_flops(tiny_pipe.vae.config, 8) == decoded_for_real
