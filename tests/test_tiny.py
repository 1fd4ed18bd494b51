"""The tiny engine: a standard StableDiffusionPipeline, offline, deterministic, trainable."""
import numpy as np
import torch
from diffusers import AutoencoderKL, StableDiffusionPipeline, UNet2DConditionModel
from PIL import Image
from transformers import CLIPTextModel, CLIPTokenizer

from sdlab import losses, shapes, tiny, train
from sdlab.images import images_to_tensor
from sdlab.text import tokenize


def test_loads_offline_as_sd15_component_classes(tiny_pipe):
    assert type(tiny_pipe) is StableDiffusionPipeline
    assert isinstance(tiny_pipe.tokenizer, CLIPTokenizer) and isinstance(tiny_pipe.text_encoder, CLIPTextModel)
    assert isinstance(tiny_pipe.vae, AutoencoderKL) and isinstance(tiny_pipe.unet, UNet2DConditionModel)
    assert tiny_pipe.safety_checker is None
    assert tiny_pipe.device.type == "cpu" and tiny_pipe.unet.dtype == torch.float32


def test_sd_layout_f8_4_channels_and_sd15_schedule(tiny_pipe):
    assert tiny_pipe.vae_scale_factor == 8 and tiny_pipe.vae.config.latent_channels == 4
    cfg = tiny_pipe.scheduler.config
    assert (cfg.beta_schedule, cfg.beta_start, cfg.beta_end, cfg.num_train_timesteps, cfg.prediction_type) == (
        "scaled_linear", 0.00085, 0.012, 1000, "epsilon")
    # measured from data (1 / std of the latents), not copied from SD's 0.18215
    assert tiny_pipe.vae.config.scaling_factor != 0.18215 and 0.05 < tiny_pipe.vae.config.scaling_factor < 20


def test_default_output_is_one_64x64_image(tiny_pipe):
    out = tiny_pipe("a red circle on the left", num_inference_steps=25, generator=torch.Generator().manual_seed(0))
    assert len(out.images) == 1 and isinstance(out.images[0], Image.Image) and out.images[0].size == (64, 64)
    arr = tiny_pipe("a red circle", num_inference_steps=5, output_type="np").images
    assert arr.shape == (1, 64, 64, 3) and arr.dtype == np.float32 and arr.min() >= 0 and arr.max() <= 1


def test_same_seed_same_image_other_seed_differs(tiny_pipe):
    def run(seed):
        return tiny_pipe("a large blue square at the top", num_inference_steps=10, output_type="np",
                         generator=torch.Generator().manual_seed(seed)).images
    a, b, c = run(7), run(7), run(8)
    assert np.array_equal(a, b)
    assert np.abs(a - c).mean() > 1e-3


def test_weights_are_small_and_safetensors():
    files = [p for p in tiny.TINY_DIR.rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in files) <= 25 * 2**20
    assert {p.parent.name for p in files if p.suffix == ".safetensors" and p.name != train.SAMPLES_FILE} == {
        "unet", "vae", "text_encoder"}
    assert (tiny.TINY_DIR / train.SAMPLES_FILE).stat().st_size < 200_000  # the run's recorded samples: latents only
    assert (tiny.TINY_DIR / "README.md").is_file()  # the model card


def test_model_draws_what_it_is_asked_for(tiny_pipe):
    """A smoke check of quality (the benchmark measures it properly): 6 of 8 canonical prompts right."""
    things = [shapes.Thing(c, s, p, z) for c, s, p, z in [
        ("red", "circle", "left", "large"), ("blue", "square", "right", "large"),
        ("green", "triangle", "top", "large"), ("yellow", "circle", "bottom", "large"),
        ("purple", "square", "center", "large"), ("orange", "triangle", "left", "large"),
        ("red", "square", "top", "small"), ("blue", "circle", "center", "small")]]
    images = tiny_pipe([t.prompt() for t in things], num_inference_steps=25, guidance_scale=4.0, output_type="np",
                       generator=torch.Generator().manual_seed(0)).images
    right = sum(all(shapes.match([t], shapes.judge((im * 255).round().astype(np.uint8))).values())
                for t, im in zip(things, images, strict=True))
    assert right >= 6, right


def _fixed_eval_loss(unet, text_encoder, latents, ids, scheduler):
    g = torch.Generator().manual_seed(123)
    with torch.no_grad():
        return losses.diffusion_loss(unet, text_encoder, latents, ids, scheduler, g).item()


def test_a_short_training_run_lowers_the_loss():
    torch.manual_seed(0)
    text_encoder, unet, scheduler = tiny.build_text_encoder(), tiny.build_unet(), tiny.build_noise_scheduler()
    scenes = shapes.sample(8, seed=0)
    latents = torch.randn(8, 4, 8, 8, generator=torch.Generator().manual_seed(0))  # stand-ins for VAE latents
    ids = tokenize(tiny.load_tokenizer(), [s.caption for s in scenes])
    before = _fixed_eval_loss(unet, text_encoder, latents, ids, scheduler)
    params = list(unet.parameters()) + list(text_encoder.parameters())
    opt = torch.optim.AdamW(params, lr=1e-3)
    g = torch.Generator().manual_seed(1)
    for _ in range(30):
        loss = losses.diffusion_loss(unet, text_encoder, latents, ids, scheduler, g)
        loss.backward()
        opt.step()
        opt.zero_grad()
    after = _fixed_eval_loss(unet, text_encoder, latents, ids, scheduler)
    assert after < 0.7 * before, (before, after)


def test_a_short_vae_run_lowers_the_reconstruction_error():
    torch.manual_seed(0)
    vae = tiny.build_vae()
    x = images_to_tensor(shapes.batch(shapes.sample(8, seed=1))[0])
    opt = torch.optim.AdamW(vae.parameters(), lr=2e-3)
    with torch.no_grad():
        before = losses.vae_loss(vae, x, 1e-6, torch.Generator().manual_seed(0))[1].item()
    for _ in range(15):
        loss, _ = losses.vae_loss(vae, x, 1e-6)
        loss.backward()
        opt.step()
        opt.zero_grad()
    with torch.no_grad():
        after = losses.vae_loss(vae, x, 1e-6, torch.Generator().manual_seed(0))[1].item()
    assert after < 0.5 * before, (before, after)
