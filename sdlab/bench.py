"""Benchmarks that print figures: prompt adherence, VAE fidelity, speed and memory.

Targets live here, not in tests: a slow machine makes a benchmark report a slow figure, never
a red test.

    python -m sdlab.bench            # the tiny engine on this machine: a table
    python -m sdlab.bench --json     # the same figures as one JSON object
    python -m sdlab.bench --engine tiny-flow   # the same table for SD3's transformer on the same world
    python -m sdlab.bench --gpu      # SD v1.5's architecture on a CUDA GPU (see sdlab.gpubench)

Prompt adherence is read by the shapes world's judge (pixels only, no model) over (prompt,
seed) pairs that training never drew: every one of the 180 single-object descriptions in its
canonical wording ("a large red circle on the left") with fresh seeds, at guidance 1.0 (no
classifier-free guidance) and at the engine's default guidance.

Attention is measured against its baseline: the share of a word's cross-attention that lands
inside the object's pixels, divided by the object's share of the image (what attention spread
evenly would give), per word kind (`attention_on_objects`).
"""
from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from . import attention, shapes, tiny, tiny_flow
from .engines import TINY_GUIDANCE, generate, is_flow, load_pipeline
from .images import images_to_tensor, to_uint8
from .latents import decode, encode, psnr
from .stats import mean_interval

BENCH_SEED = 20_000  # noise seeds from here up; training never seeds its noise with these


def adherence(pipe, things: Sequence[Sequence[shapes.Thing]], prompts: Sequence[str], seeds: Sequence[int],
              guidance_scale: float, steps: int = 25, batch_size: int = 45) -> dict[str, float]:
    """Fraction of generated images whose attributes the judge reads as the prompt asked.

    Args:
        things: per prompt, the objects it asks for.
        prompts: one prompt per entry of `things`.
        seeds: one noise seed per prompt (each batch uses its first prompt's seed).
    """
    found = {a: [] for a in (*shapes.ATTRIBUTES, "all")}
    for i in range(0, len(prompts), batch_size):
        images = generate(pipe, list(prompts[i:i + batch_size]), seed=int(seeds[i]), guidance_scale=guidance_scale,
                          num_inference_steps=steps, output_type="np").images
        for a, v in shapes.hits(things[i:i + batch_size], to_uint8(images)).items():
            found[a].extend(v)
    return {a: float(np.mean(v)) for a, v in found.items()}


def single_object_set(repeats: int = 2) -> tuple[list[tuple[shapes.Thing]], list[str], list[int]]:
    """All 180 single-object prompts, `repeats` seeds each (360 pairs by default)."""
    things = [(t,) for _ in range(repeats) for t in shapes.all_things()]
    seeds = [BENCH_SEED + i for i in range(len(things))]
    return things, [t[0].prompt() for t in things], seeds


def two_object_set(n: int = 180, seed: int = 4242) -> tuple[list[tuple[shapes.Thing, ...]], list[str], list[int]]:
    """`n` two-object prompts with positions ("a red circle on the left and a blue square on the right")."""
    rng = np.random.default_rng(seed)
    things, prompts = [], []
    while len(things) < n:
        pos1, pos2 = shapes.TWO_OBJECT_LAYOUTS[rng.integers(len(shapes.TWO_OBJECT_LAYOUTS))]
        a, b = shapes.random_thing(rng, pos1), shapes.random_thing(rng, pos2)
        if (a.colour, a.shape) == (b.colour, b.shape):
            continue
        things.append((a, b))
        prompts.append(f"{a.prompt()} and {b.prompt()}")
    return things, prompts, [BENCH_SEED + 10_000 + i for i in range(n)]


def attention_on_objects(pipe, quick: bool = False) -> dict:
    """Each word kind's cross-attention inside its object, as a multiple of the uniform share.

    Over the 180 single-object canonical prompts (45 with `quick`), seeds training never drew,
    at the engine's default guidance; maps from the layers at the latents' own grid (8x8 in the
    tiny UNet), averaged over heads, those layers and the 25 steps (`attention.object_attention`).
    1.0 is what attention spread evenly over the image would give.
    """
    things = shapes.all_things()[::4] if quick else shapes.all_things()
    measured = attention.object_attention(pipe, things, seed=BENCH_SEED + 50_000)
    result = {"prompts": len(things), "images_with_an_object": len(measured["kept"]),
              "layer_grid": [pipe.unet.config.sample_size] * 2}
    for kind, ratios in measured["ratios"].items():
        mean, half = mean_interval(ratios)
        result[kind] = {"mean_ratio": mean, "ci95": half, "share_above_uniform": float((ratios > 1).mean())}
    return result


def attention_on_pairs(pipe, quick: bool = False) -> dict:
    """Binding in the maps: two-object prompts' colour and shape words on their own object vs the other.

    Over 60 of the two-object prompts (20 with `quick`), each object's region is the
    foreground on its side of the image (`attention.pair_attention`); equal values mean the
    maps separate objects from the background but do not tell the two objects apart.
    """
    pairs = two_object_set(20 if quick else 60)[0]
    measured = attention.pair_attention(pipe, pairs, seed=BENCH_SEED + 60_000)
    result = {"prompts": len(pairs), "objects_measured": len(measured["own"]["colour"])}
    for kind in attention.BINDING_KINDS:
        own, other = measured["own"][kind], measured["other"][kind]
        result[kind] = {"own": mean_interval(own), "other": mean_interval(other),
                        "own_above_other": float((own > other).mean()) if len(own) else float("nan")}
    return result


def vae_psnr(pipe, n: int = 256, seed: int = 2026) -> float:
    """Mean PSNR (dB, images in [0, 1]) of encode -> decode on fresh scenes (a fifth with two objects)."""
    x = images_to_tensor(shapes.batch(shapes.sample(n, seed=seed, p_two=0.2))[0])
    return float(psnr(decode(pipe, encode(pipe, x)), x / 2 + 0.5).mean())


def seconds_per_call(pipe, batch: int, steps: int = 25, repeats: int = 5) -> float:
    """Median wall time of one `generate` call making `batch` images (after one warm-up call)."""
    prompts = ["a large red circle on the left"] * batch
    generate(pipe, prompts, num_inference_steps=steps, output_type="np")
    times = []
    for r in range(repeats):
        t = time.perf_counter()
        generate(pipe, prompts, seed=r, num_inference_steps=steps, output_type="np")
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def peak_memory_mb() -> float:
    """Peak resident memory of this process so far (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (2**20 if sys.platform == "darwin" else 2**10)


def run_tiny(quick: bool = False, engine: str = "tiny", device: str | None = None) -> dict:
    """Every figure of the tiny engine's quality bar; `engine` may also be a trained pipeline's folder."""
    pipe = load_pipeline(engine, device=device, verbose=False)
    result: dict = {"engine": str(engine), "device": str(pipe.device), "torch_threads": torch.get_num_threads(),
                    "cpu": platform.processor() or platform.machine()}
    repeats = 1 if quick else 2
    things, prompts, seeds = single_object_set(repeats)
    if quick:
        things, prompts, seeds = things[::4], prompts[::4], seeds[::4]
    parts = ("text_encoder", "transformer" if is_flow(pipe) else "unet", "vae")
    result["parameters"] = {name: sum(p.numel() for p in getattr(pipe, name).parameters()) for name in parts}
    result["single_object_pairs"] = len(prompts)
    result["adherence_guidance_1"] = adherence(pipe, things, prompts, seeds, 1.0)
    result["default_guidance"] = TINY_GUIDANCE
    result["adherence_default_guidance"] = adherence(pipe, things, prompts, seeds, TINY_GUIDANCE)
    things2, prompts2, seeds2 = two_object_set(45 if quick else 180)
    result["two_object_pairs"] = len(prompts2)
    result["two_object_adherence_default_guidance"] = adherence(pipe, things2, prompts2, seeds2, TINY_GUIDANCE)
    if not is_flow(pipe):  # the maps are the UNet's cross-attention; SD3's joint attention has none of its own
        result["attention_inside_object"] = attention_on_objects(pipe, quick)
        result["attention_two_objects"] = attention_on_pairs(pipe, quick)
    result["vae_psnr_db"] = vae_psnr(pipe, 64 if quick else 256)
    result["seconds_one_image_25_steps"] = seconds_per_call(pipe, 1, repeats=3 if quick else 7)
    result["seconds_batch_16_25_steps"] = seconds_per_call(pipe, 16, repeats=1 if quick else 3)
    result["peak_memory_mb"] = peak_memory_mb()
    if pipe.device.type == "cuda":
        result["peak_gpu_memory_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return result


def format_table(r: dict) -> str:
    def pct(d):
        return "  ".join(f"{k} {100 * v:5.1f}%" for k, v in d.items())

    lines = [
        f"engine {r['engine']} on {r['device']}, {r['cpu']} ({r['torch_threads']} torch threads)",
        f"single-object adherence, {r['single_object_pairs']} (prompt, seed) pairs never drawn in training:",
        f"  guidance 1.0        {pct(r['adherence_guidance_1'])}",
        f"  guidance {r['default_guidance']:<4} (default) {pct(r['adherence_default_guidance'])}",
        f"two-object adherence, {r['two_object_pairs']} pairs, guidance {r['default_guidance']}:",
        f"  {pct(r['two_object_adherence_default_guidance'])}",
        *(_attention_lines(r.get("attention_inside_object")) + _pair_lines(r.get("attention_two_objects"))
          or ["cross-attention on objects: not measured (a transformer's joint attention; sdlab.attention reads "
              "a UNet's cross-attention)"]),
        f"VAE reconstruction PSNR      {r['vae_psnr_db']:.1f} dB",
        f"one 64x64 image, 25 steps    {r['seconds_one_image_25_steps']:.3f} s",
        f"batch of 16, 25 steps        {r['seconds_batch_16_25_steps']:.3f} s",
        f"peak memory (process RSS)    {r['peak_memory_mb']:.0f} MB",
    ]
    if "peak_gpu_memory_mb" in r:
        lines.append(f"peak GPU memory (allocated)  {r['peak_gpu_memory_mb']:.0f} MB")
    return "\n".join(lines)


def _attention_lines(a: dict | None) -> list[str]:
    if not a:
        return []
    h, w = a["layer_grid"]
    lines = [f"cross-attention inside the object at the {h}x{w} layers, as a multiple of uniform attention "
             f"({a['images_with_an_object']} of {a['prompts']} prompts drew an object):"]
    for kind in attention.WORD_KINDS:
        k = a[kind]
        label = kind + " word" if kind != "end" else "end token"
        lines.append(f"  {label:<14} {k['mean_ratio']:.2f}x +- {k['ci95']:.2f}"
                     f"   (above 1x in {100 * k['share_above_uniform']:.0f}% of images)")
    return lines


def _pair_lines(a: dict | None) -> list[str]:
    if not a:
        return []
    lines = [f"two-object prompts: each object's words on its own object vs on the other "
             f"({a['objects_measured']} objects of {a['prompts']} prompts):"]
    for kind in attention.BINDING_KINDS:
        k = a[kind]
        (own, h1), (other, h2) = k["own"], k["other"]
        lines.append(f"  {kind + ' word':<14} own {own:.2f}x +- {h1:.2f}   other {other:.2f}x +- {h2:.2f}"
                     f"   (own > other in {100 * k['own_above_other']:.0f}% of objects)")
    return lines


def _architecture(result: dict) -> str:
    """One line on each trained part, read from the shipped configs."""
    unet = json.loads((tiny.TINY_DIR / "unet" / "config.json").read_text())
    vae = json.loads((tiny.TINY_DIR / "vae" / "config.json").read_text())
    text = json.loads((tiny.TINY_DIR / "text_encoder" / "config.json").read_text())
    n = result.get("parameters", {})
    layers = unet["layers_per_block"]
    layers = tuple(layers) if isinstance(layers, list) else layers

    def millions(name: str) -> str:
        return f"{n[name] / 1e6:.2f}M parameters" if name in n else "?"

    return (f"text encoder {text['num_hidden_layers']} layers of width {text['hidden_size']} "
            f"({millions('text_encoder')}); "
            f"VAE channels {tuple(vae['block_out_channels'])} ({millions('vae')}); "
            f"UNet {' -> '.join(unet['down_block_types'])} | {' -> '.join(unet['up_block_types'])}, "
            f"channels {tuple(unet['block_out_channels'])}, ResNet blocks per level on the way down {layers} "
            f"(up: one more each), "
            f"{'middle block ' + unet['mid_block_type'] if unet['mid_block_type'] else 'no middle block'} "
            f"({millions('unet')})")


def _flow_architecture(result: dict) -> str:
    """One line on the tiny-flow transformer, read from its shipped config."""
    cfg = json.loads((tiny_flow.FLOW_DIR / "transformer" / "config.json").read_text())
    n = result.get("parameters", {}).get("transformer")
    side = cfg["sample_size"] // cfg["patch_size"]
    return (f"SD3Transformer2DModel: {cfg['num_layers']} joint (MM-DiT) blocks of width "
            f"{cfg['num_attention_heads'] * cfg['attention_head_dim']} ({cfg['num_attention_heads']} heads), "
            f"{cfg['patch_size']}x{cfg['patch_size']} patches of the {cfg['sample_size']}x{cfg['sample_size']}x"
            f"{cfg['in_channels']} latents = {side * side} image tokens"
            + (f" ({n / 1e6:.2f}M parameters)" if n else ""))


def write_flow_model_card(result: dict) -> Path:
    """Write the tiny-flow engine's card (README.md beside its transformer) from training.json and these figures."""
    card = json.loads((tiny_flow.FLOW_DIR / "training.json").read_text())
    cfg = card["config"]
    size = sum(f.stat().st_size for f in (tiny_flow.FLOW_DIR / "transformer").rglob("*") if f.is_file())
    text = f"""# tiny-flow: Stable Diffusion 3's denoiser and objective on the tiny engine's world

A `StableDiffusion3Pipeline` whose transformer this project trained with rectified flow (Esser et al., 2024)
on the shapes world, beside the tiny engine (`tiny-sd`), whose VAE, CLIP tokenizer and text encoder it reuses,
frozen (the text encoder sits in both of SD3's CLIP places, with an identity projection; no T5). Load it with
`sdlab.load_pipeline("tiny-flow")`; notebook 09 sets it beside the tiny engine.

## How it was made
- Command: `{card['command']}` (then `python -m sdlab.bench --engine tiny-flow --write-card` for the figures).
- Denoiser: {_flow_architecture(result)}.
- Objective: x_t = (1 - t) x_0 + t eps, predict the velocity eps - x_0 (`sdlab.losses.flow_matching_loss`),
  t logit-normal({cfg['logit_mean']}, {cfg['logit_std']}); {cfg['steps']} steps at batch {cfg['batch_size']},
  learning rate {cfg['lr']} (warm-up {cfg['warmup_steps']}, cosine), caption dropout {cfg['caption_dropout']},
  EMA {cfg['ema_decay']}, on the tiny engine's {cfg['num_images']} training scenes encoded with its VAE
  (scaling factor {card['scaling_factor']:.4f}).
- Sampler: `FlowMatchEulerDiscreteScheduler`, shift 1.0 (SD3 uses 3.0 at 1024 px).
- Compute time (minutes): {", ".join(f"{k} {v / 60:.1f}" for k, v in card['seconds'].items())};
  {card['sequential_minutes']} in all, on a {card['device']} with {card['torch_threads']} torch threads.
- Stored: the transformer only, fp16 safetensors ({size / 1e6:.1f} MB); loaded as fp32 on a CPU.

## Figures (`python -m sdlab.bench --engine tiny-flow`)
```
{format_table(result)}
```
"""
    return _write_card(tiny_flow.FLOW_DIR, text, result)


def write_model_card(result: dict) -> Path:
    """Write the tiny model's card (README.md beside its weights) from training.json and these figures."""
    card = json.loads((tiny.TINY_DIR / "training.json").read_text())
    cfg = card["config"]
    pipe_sizes = {name: sum(f.stat().st_size for f in (tiny.TINY_DIR / name).rglob("*") if f.is_file())
                  for name in ("text_encoder", "unet", "vae", "tokenizer")}
    text = f"""# tiny-sd: a Stable Diffusion small enough for any CPU

Stable Diffusion v1.5's component classes (`CLIPTokenizer`, `CLIPTextModel`, `AutoencoderKL`,
`UNet2DConditionModel`, `DDIMScheduler`) at a small size, trained from scratch by this project on
the procedural shapes world (`sdlab.shapes`): 64x64 images of one or two coloured shapes with
captions such as "a large red circle on the left". Load it with `sdlab.load_pipeline("tiny")`.

## How it was made
- Command: `{card['command']}` (then `python -m sdlab.bench --write-card` for the figures below).
  {card.get('note', '')}
- Parts: {_architecture(result)}.
- Seed {cfg['seed']}; VAE {cfg['vae_steps']} steps at batch {cfg['vae_batch_size']}, then its decoder alone
  {cfg['decoder_steps']} more steps; text encoder + UNet {cfg['unet_steps']} steps at batch {cfg['batch_size']} on
  {cfg['num_images']} pre-encoded images ({int(100 * cfg['p_two'])}% with two objects), caption dropout
  {cfg['caption_dropout']}, min-SNR-{cfg['snr_gamma']}, EMA {cfg['ema_decay']}; grounding loss (TokenCompose's
  L_token on each object's size, colour and shape words at the 8x8 layer, `sdlab.grounding`) weight
  {cfg.get('grounding_weight', 0.0)}.
- Compute time per stage (minutes): {", ".join(f"{k} {v / 60:.1f}" for k, v in card['seconds'].items())};
  {card['sequential_minutes']} in all, on a {card['device']} with {card['torch_threads']} torch threads.
- VAE scaling factor, measured as 1 / std of the latents (SD v1.5's is 0.18215): {card['scaling_factor']:.4f}
- Stored in fp16 safetensors ({sum(pipe_sizes.values()) / 1e6:.1f} MB with the tokenizer); loaded as fp32 on a CPU.

## Figures (`python -m sdlab.bench`)
```
{format_table(result)}
```
"""
    return _write_card(tiny.TINY_DIR, text, result)


def _write_card(folder: Path, text: str, result: dict) -> Path:
    """The card as README.md beside the weights, and its figures as benchmark.json."""
    path = folder / "README.md"
    path.write_text(text)
    (folder / "benchmark.json").write_text(json.dumps(result, indent=2) + "\n")
    return path


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m sdlab.bench",
                                     description="Benchmark the tiny engine (or SD v1.5 on a GPU).")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.add_argument("--quick", action="store_true", help="fewer samples: a smoke test of the benchmark itself")
    parser.add_argument("--gpu", action="store_true", help="SD v1.5's architecture on a CUDA GPU (fp16, 512x512)")
    parser.add_argument("--write-card", action="store_true", help="also write the figures into the tiny model's card")
    parser.add_argument("--engine", default="tiny",
                        help="what to benchmark: 'tiny' (default), 'tiny-flow', or the folder of a pipeline that "
                             "`python -m sdlab.train` made, e.g. runs/tiny/pipeline")
    parser.add_argument("--device", default=None, help="e.g. cuda or cpu (default: the engine's own choice)")
    args = parser.parse_args(argv)
    if args.gpu:
        from . import gpubench

        gpubench.main(json_output=args.json, quick=args.quick)
        return
    if args.write_card and args.engine not in ("tiny", "tiny-flow"):
        parser.error("--write-card writes a shipped engine's card; use --engine tiny or --engine tiny-flow")
    result = run_tiny(quick=args.quick, engine=args.engine, device=args.device)
    print(json.dumps(result, indent=None) if args.json else format_table(result))
    if args.write_card:
        write = write_flow_model_card if args.engine == "tiny-flow" else write_model_card
        print(f"model card: {write(result)}")


if __name__ == "__main__":
    main()
