"""GPU benchmark: Stable Diffusion v1.5's architecture, stock vs hand-written loop vs optimised.

No weights are downloaded: the UNet, VAE and text encoder are built from SD v1.5's published
configurations with random weights. Time and memory per step do not depend on the weights'
values, so the figures are those of the real model (the images are noise, which is fine).

Three ways to make the same images (fp16, 512x512, 50 DDIM steps, guidance 7.5):
(a) the stock `StableDiffusionPipeline.__call__`;
(b) the notebooks' hand-written loop, `sdlab.sampling.text_to_image`;
(c) an optimised path: SDPA attention (diffusers' default on torch 2), fused QKV projections,
    channels-last memory layout, and `torch.compile` of the UNet and the VAE decoder.

It also counts the UNet's FLOPs per step (torch's FlopCounterMode) and reports the achieved
fraction of the GPU's dense fp16 tensor-core peak.

    python -m sdlab.bench --gpu           # on a CUDA machine
Without CUDA it runs the same code on the CPU at a tiny size and width, so that the code path is
tested, and says that the GPU figures are pending.
"""
from __future__ import annotations

import functools
import json
import sys
import time

import torch
from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
from torch.utils.flop_counter import FlopCounterMode
from transformers import CLIPTextConfig, CLIPTextModel

from . import sampling, tiny

# Dense (no sparsity) fp16/bf16 tensor-core peaks from NVIDIA's data sheets, TFLOP/s.
DENSE_FP16_PEAK_TFLOPS = {"H200": 989.5, "H100": 989.5, "A100": 312.0, "L4": 121.0, "T4": 65.0, "A10": 125.0,
                          "V100": 125.0, "RTX 4090": 165.2, "L40S": 362.0}
PROMPT = "a photo of an astronaut riding a horse on the moon"


def sd15_unet_config(width: int = 320, cross_attention_dim: int = 768) -> dict:
    """SD v1.5's unet/config.json; `width` scales the channels (320 is the real model)."""
    w = width
    return {"sample_size": 64, "in_channels": 4, "out_channels": 4, "layers_per_block": 2,
                "block_out_channels": (w, 2 * w, 4 * w, 4 * w), "cross_attention_dim": cross_attention_dim,
                "attention_head_dim": 8, "norm_num_groups": 32 if w >= 32 else w // 2,
                "down_block_types": ("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
                "up_block_types": ("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3}


def sd15_vae_config(width: int = 128) -> dict:
    w = width
    return {"in_channels": 3, "out_channels": 3, "latent_channels": 4, "layers_per_block": 2, "sample_size": 512,
                "block_out_channels": (w, 2 * w, 4 * w, 4 * w), "norm_num_groups": 32 if w >= 32 else w // 2,
                "down_block_types": ("DownEncoderBlock2D",) * 4, "up_block_types": ("UpDecoderBlock2D",) * 4,
                "scaling_factor": 0.18215}


def sd15_text_config(hidden: int = 768, layers: int = 12) -> CLIPTextConfig:
    """OpenAI CLIP ViT-L/14's text tower, SD v1.5's text encoder."""
    return CLIPTextConfig(vocab_size=49408, hidden_size=hidden, intermediate_size=4 * hidden,
                          num_hidden_layers=layers, num_attention_heads=max(1, hidden // 64),
                          max_position_embeddings=77, hidden_act="quick_gelu", projection_dim=hidden)


def build_random_sd15(device: torch.device, dtype: torch.dtype, small: bool = False) -> StableDiffusionPipeline:
    """SD v1.5's architecture with random weights (`small`: 1/10 of the widths, for CPU tests)."""
    torch.manual_seed(0)
    hidden = 64 if small else 768
    unet = UNet2DConditionModel(**sd15_unet_config(32 if small else 320, hidden))
    vae = AutoencoderKL(**sd15_vae_config(16 if small else 128))
    text_encoder = CLIPTextModel(sd15_text_config(hidden, 2 if small else 12))
    scheduler = DDIMScheduler(**tiny.SCHEDULE)
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tiny.load_tokenizer(), unet=unet,
                                   scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device, dtype)


def unet_flops_per_step(pipe, batch: int, size: int) -> int:
    """FLOPs of one UNet call with classifier-free guidance (2 x batch latents)."""
    latents = torch.randn(2 * batch, 4, size // 8, size // 8, device=pipe.device, dtype=pipe.unet.dtype)
    embeds = torch.randn(2 * batch, 77, pipe.text_encoder.config.hidden_size, device=pipe.device,
                         dtype=pipe.unet.dtype)
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        pipe.unet(latents, torch.tensor(500, device=pipe.device), encoder_hidden_states=embeds)
    return counter.get_total_flops()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_call(fn, device: torch.device, repeats: int) -> tuple[float, float, object]:
    """(median seconds, peak GPU memory in GiB, fn's last result) of fn() after one warm-up call."""
    result = fn()
    _sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(repeats):
        _sync(device)
        t = time.perf_counter()
        result = fn()
        _sync(device)
        times.append(time.perf_counter() - t)
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else float("nan")
    return sorted(times)[len(times) // 2], peak, result


def optimise(pipe: StableDiffusionPipeline, compile: bool) -> StableDiffusionPipeline:
    """Fused QKV, channels-last, and (on CUDA) torch.compile of the UNet and VAE decoder."""
    pipe.fuse_qkv_projections()
    pipe.unet.to(memory_format=torch.channels_last)
    pipe.vae.to(memory_format=torch.channels_last)
    if compile:
        # inductor's default mode: "max-autotune" tunes every matrix product and convolution
        # first, which costs minutes of compiling per batch size.
        pipe.unet = torch.compile(pipe.unet, fullgraph=True)
        pipe.vae.decode = torch.compile(pipe.vae.decode, fullgraph=True)
    return pipe


def run(device: torch.device | None = None, small: bool | None = None, size: int | None = None,
        steps: int | None = None, batches: tuple[int, ...] | None = None, repeats: int = 3) -> dict:
    """Benchmark (a) stock, (b) hand-written, (c) optimised; returns the figures as a dict."""
    device = device or torch.device("cuda" if torch.cuda.is_available() else "cpu")
    on_gpu = device.type == "cuda"
    small = (not on_gpu) if small is None else small
    size = size or (512 if on_gpu else 64)
    steps = steps or (50 if on_gpu else 2)
    batches = batches or ((1, 4, 8) if on_gpu else (1,))
    dtype = torch.float16 if on_gpu else torch.float32
    pipe = build_random_sd15(device, dtype, small)
    name = torch.cuda.get_device_name(device) if on_gpu else "CPU"
    peak = next((v for k, v in DENSE_FP16_PEAK_TFLOPS.items() if k in name), None)
    result = {"device": name, "dtype": str(dtype), "size": size, "steps": steps, "small_model": small,
              "dense_fp16_peak_tflops": peak, "rows": []}

    # (a) and (b) must make the same images: the hand-written loop is the pipeline, unrolled
    a = pipe(PROMPT, height=size, width=size, num_inference_steps=steps, output_type="pt",
             generator=torch.Generator().manual_seed(0)).images
    b = sampling.text_to_image(pipe, PROMPT, seed=0, num_inference_steps=steps, guidance_scale=7.5,
                               height=size, width=size)
    result["hand_loop_max_abs_diff"] = float((a.float() - b.float()).abs().max())

    variants = {
        "a_stock": lambda n: pipe([PROMPT] * n, height=size, width=size, num_inference_steps=steps, output_type="pt",
                                  generator=torch.Generator().manual_seed(0)),
        "b_hand_loop": lambda n: sampling.text_to_image(pipe, [PROMPT] * n, seed=0, num_inference_steps=steps,
                                                        guidance_scale=7.5, height=size, width=size),
    }
    flops = {n: unet_flops_per_step(pipe, n, size) for n in batches}
    timings = {}
    for key, fn in variants.items():
        for n in batches:
            timings[key, n] = _report(key, n, time_call(functools.partial(fn, n), device, repeats))
    optimise(pipe, compile=on_gpu)
    for n in batches:
        timings["c_optimised", n] = _report("c_optimised", n,
                                            time_call(functools.partial(variants["a_stock"], n), device, repeats))
    for (key, n), (secs, mem) in timings.items():
        achieved = flops[n] * steps / secs / 1e12
        result["rows"].append({"variant": key, "batch": n, "seconds_per_batch": secs, "seconds_per_image": secs / n,
                               "unet_steps_per_second": steps / secs, "peak_memory_gib": mem,
                               "unet_tflops_per_step": flops[n] / 1e12, "achieved_tflops": achieved,
                               "fraction_of_peak": achieved / peak if peak else None})
    return result


def _report(variant: str, batch: int, timing: tuple[float, float, object]) -> tuple[float, float]:
    """Say each timing as it comes (on stderr): compiling takes a while, and a stopped run keeps these."""
    print(f"{variant} batch {batch}: {timing[0]:.3f} s per batch", file=sys.stderr, flush=True)
    return timing[:2]  # the images themselves are not kept


def format_table(r: dict) -> str:
    lines = [f"{r['device']} {r['dtype']} {r['size']}x{r['size']} {r['steps']} steps"
             + (" (small model: code-path check only)" if r["small_model"] else ""),
             f"hand-written loop vs stock pipeline: max |difference| = {r['hand_loop_max_abs_diff']:.2e}",
             f"{'variant':<13}{'batch':>6}{'s/image':>10}{'it/s':>8}{'peak GiB':>10}"
             f"{'UNet TFLOP/step':>17}{'% of peak':>11}"]
    for row in r["rows"]:
        frac = f"{100 * row['fraction_of_peak']:.1f}" if row["fraction_of_peak"] else "n/a"
        on_cpu = row["peak_memory_gib"] != row["peak_memory_gib"]  # NaN
        mem = "n/a" if on_cpu else f"{row['peak_memory_gib']:.2f}"
        lines.append(f"{row['variant']:<13}{row['batch']:>6}{row['seconds_per_image']:>10.3f}"
                     f"{row['unet_steps_per_second']:>8.1f}{mem:>10}"
                     f"{row['unet_tflops_per_step']:>17.3f}{frac:>11}")
    return "\n".join(lines)


def main(json_output: bool = False, quick: bool = False) -> None:
    on_gpu = torch.cuda.is_available()
    if not on_gpu:
        print("No CUDA GPU here, so no GPU figures: the GPU benchmark needs one (they are pending a GPU run).\n"
              "Running the same code path on the CPU with a small model at 64x64 and 2 steps instead.")
    result = run(repeats=1 if quick or not on_gpu else 3, batches=(1, 8) if quick and on_gpu else None)
    print(json.dumps(result) if json_output else format_table(result))
