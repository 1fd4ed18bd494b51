"""Train the tiny Stable Diffusion from scratch on the shapes world, with one command.

Latent diffusion (Rombach et al., 2022) is trained in two stages, and so is this:

1. **VAE** -- an `AutoencoderKL` learns to squeeze 64x64x3 images into 8x8x4 latents and back:
   reconstruction loss (MSE + L1) plus a tiny KL term towards N(0, I), as in SD's autoencoder
   (Appendix G of the paper; SD used weight 1e-6). It trains on whole 64x64 images: crops
   would be cheaper, but GroupNorm then sees other statistics in training than on whole images,
   and the decoder paints blotches on the empty background (we tried).
2. **Text encoder + UNet** -- every image is encoded once (the "pre-encoded latents" trick),
   the latents are scaled by `scaling_factor` = 1 / std(latents), measured from the data the
   way SD's 0.18215 was, and the UNet learns to predict the noise added at a random timestep
   (the epsilon objective, Ho et al. 2020, eq. 14), conditioned on the caption through
   cross-attention. Captions are dropped 10% of the time so that one model learns both the
   conditional and the unconditional prediction that classifier-free guidance needs (Ho &
   Salimans, 2022). The loss is weighted by min-SNR-5 (Hang et al., 2023), which speeds up
   convergence; an EMA of the weights is what ships. A grounding term (TokenCompose, Wang et
   al., 2024; `sdlab.grounding`) asks the cross-attention of the 8x8 layer to put each
   object's size, colour and shape words on that object's pixels: without it, the tiny model's
   attention maps stayed as flat as uniform attention.

3. **Decoder** -- the decoder alone goes on learning with the encoder frozen, as Stability AI
   made SD's improved `sd-vae-ft-mse` decoder: the latents do not move, so the UNet's training
   is unaffected, and this stage can run in a second process beside stage 2
   (`--stages decoder` in one, `--stages encode,unet` in the other).

Everything runs through `accelerate`, so the same command trains on a CPU, a GPU, or several
GPUs (`accelerate launch -m sdlab.train ...`). Progress bars, a CSV loss log, checkpoints
every few minutes, and `--resume` make a stopped run lose nothing.

    python -m sdlab.train                      # the full run that made the shipped weights
    python -m sdlab.train --resume             # carry on where a stopped run left off
    python -m sdlab.train --vae-steps 50 --unet-steps 50 --out runs/quick   # a smoke test
    python -m sdlab.train --denoiser sd3-flow  # the tiny-flow engine instead (sdlab.train_flow)
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import json
import math
import shutil
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from diffusers import AutoencoderKL, StableDiffusionPipeline, UNet2DConditionModel
from diffusers.training_utils import EMAModel
from tqdm.auto import tqdm
from transformers import CLIPTextModel

from . import grounding, shapes, tiny
from .attention import capture_cross_attention
from .engines import TINY_GUIDANCE
from .images import images_to_tensor
from .losses import diffusion_loss, lr_lambda, vae_loss
from .stages import SEED_OFFSETS, RngState, Stage, caption_for, encode_dataset, finished, optimizer_step
from .text import tokenize


@dataclass
class TrainConfig:
    out: str = "runs/tiny"
    seed: int = 0
    # stage 1: the VAE
    vae_steps: int = 1400
    vae_batch_size: int = 16
    vae_lr: float = 2e-3
    kl_weight: float = 1e-6
    # stage 3: the decoder alone, encoder frozen (SD's ft-MSE VAE was made the same way)
    decoder_steps: int = 600
    decoder_lr: float = 1e-3
    # pre-encoded dataset
    num_images: int = 16000
    p_two: float = 0.2
    # stage 2: text encoder + UNet
    unet_steps: int = 3000
    batch_size: int = 128
    lr: float = 1e-3
    warmup_steps: int = 100
    caption_dropout: float = 0.1
    snr_gamma: float = 5.0
    grounding_weight: float = 0.05  # TokenCompose's L_token on the object words at the 8x8 layer; 0: off
    ema_decay: float = 0.995
    checkpoint_minutes: float = 4.0
    threads: int = 0  # 0: leave torch's default
    # samples recorded as the UNet trains (fixed prompts and seeds; see record_samples)
    sample_steps: str = "0,100,200,400,800,1600,3000"
    sample_prompts: int = 32


# --------------------------------------------------------------------------- stage 1

def _train_autoencoder(cfg: TrainConfig, name: str, stage_id: int, vae: AutoencoderKL, steps: int, lr: float,
                       kl_weight: float, resume: bool) -> AutoencoderKL:
    """The loop shared by stage 1 (the whole VAE) and stage 3 (the decoder, encoder frozen)."""
    out = Path(cfg.out) / name
    if finished(out, steps):
        return AutoencoderKL.from_pretrained(out / "final")
    accelerator = Accelerator()  # one per stage, so that each stage's checkpoint holds only its own state
    params = [p for p in vae.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0, fused=True)  # one kernel per step
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(min(100, steps // 10 + 1), steps))
    vae, opt, sched = accelerator.prepare(vae, opt, sched)
    stage = Stage(accelerator, out, steps, cfg.checkpoint_minutes)
    accelerator.register_for_checkpointing(stage_rng := RngState(cfg.seed + stage_id))
    if resume:
        stage.resume()
    bar = tqdm(total=steps, initial=stage.step, desc=name, disable=not accelerator.is_local_main_process)
    while stage.step < steps:
        rng = np.random.default_rng([cfg.seed, stage_id, stage.step, accelerator.process_index])
        images, _ = shapes.batch(shapes.random_scene(rng, cfg.p_two) for _ in range(cfg.vae_batch_size))
        x = images_to_tensor(images).to(accelerator.device)
        with accelerator.accumulate(vae):
            loss, mse = vae_loss(vae, x, kl_weight, stage_rng.generator)
            accelerator.backward(loss)
            opt.step()
            sched.step()
            opt.zero_grad()
        psnr = 10 * math.log10(4.0 / max(mse.item(), 1e-10))  # images span [-1, 1]: peak-to-peak 2
        stage.tick()
        if stage.step % 10 == 0:
            stage.log(loss=round(loss.item(), 5), psnr=round(psnr, 2), lr=sched.get_last_lr()[0])
        bar.update(1)
        bar.set_postfix(loss=f"{loss.item():.4f}", psnr=f"{psnr:.1f}dB")
    bar.close()
    stage.save()
    vae = accelerator.unwrap_model(vae).requires_grad_(True)
    if accelerator.is_main_process:
        vae.save_pretrained(out / "final")
    return vae


def train_vae(cfg: TrainConfig, resume: bool) -> AutoencoderKL:
    """Stage 1: the whole autoencoder, reconstruction + KL."""
    return _train_autoencoder(cfg, "vae", SEED_OFFSETS["vae"], tiny.build_vae(), cfg.vae_steps, cfg.vae_lr,
                              cfg.kl_weight, resume)


def train_decoder(cfg: TrainConfig, vae: AutoencoderKL, resume: bool) -> AutoencoderKL:
    """Stage 3: fine-tune the decoder with the encoder frozen, so the latents do not move.

    Stability AI improved SD's decoder the same way (sd-vae-ft-mse): the diffusion model was
    trained on the encoder's latents, and a better decoder for the same latents is a drop-in.
    Here it also means the decoder can go on learning while the UNet trains on fixed latents.
    """
    if cfg.decoder_steps == 0:
        return vae
    vae = copy.deepcopy(vae)
    vae.encoder.requires_grad_(False)
    vae.quant_conv.requires_grad_(False)
    return _train_autoencoder(cfg, "decoder", SEED_OFFSETS["decoder"], vae, cfg.decoder_steps, cfg.decoder_lr, 0.0,
                              resume)


# --------------------------------------------------------------------------- latents

# --------------------------------------------------------------------------- samples

SAMPLES_FILE = "training_samples.safetensors"  # beside the weights: what the model drew while it learned
SAMPLE_SEED = 30_000  # noise seeds for the recorded samples; neither training nor the benchmark uses them
SAMPLE_STEPS = 20     # DDIM steps of each recorded sample, at the engine's default guidance


def sample_things(n: int) -> list[shapes.Thing]:
    """`n` single-object descriptions drawn evenly from the 180 (a fixed, seeded choice)."""
    things = shapes.all_things()
    order = np.random.default_rng(606).permutation(len(things))
    return [things[i] for i in order[:n]]


def parse_steps(text: str, total: int) -> list[int]:
    """'0,100,3000' -> [0, 100, 3000], keeping the steps this run reaches."""
    steps = sorted({int(s) for s in text.split(",") if s.strip()})
    return [s for s in steps if 0 <= s <= total]


@torch.no_grad()
def record_samples(pipe: StableDiffusionPipeline, things: list[shapes.Thing]) -> torch.Tensor:
    """Denoised latents (n, 4, h, w) for the canonical prompts of `things`, seed SAMPLE_SEED + i each.

    The latents, not the images, are kept: the UNet is trained on fixed latents, so decoding
    them later with the shipped VAE shows what the model had learned at that step, with the
    decoder users have; and 8x8x4 values in fp16 are 512 bytes where a 64x64 image is 12 KB.
    (Nothing is decoded here: `pipe`'s VAE only sets the latents' size.)
    """
    generators = [torch.Generator().manual_seed(SAMPLE_SEED + i) for i in range(len(things))]
    return pipe([t.prompt() for t in things], num_inference_steps=SAMPLE_STEPS, guidance_scale=TINY_GUIDANCE,
                generator=generators, output_type="latent").images.float().cpu()


def save_samples(path: Path, samples: dict[int, torch.Tensor], things: list[shapes.Thing], scaling_factor: float):
    """One fp16 tensor per recorded step ('step_0100'), the prompts and settings in the metadata."""
    from safetensors.torch import save_file
    meta = {"what": "latents the tiny model drew at these training steps of the run that made the shipped weights "
                    "(decode with the shipped VAE: latents / scaling_factor)",
            "prompts": json.dumps([t.prompt() for t in things]),
            "things": json.dumps([asdict(t) for t in things]),
            "seeds": json.dumps([SAMPLE_SEED + i for i in range(len(things))]),
            "num_inference_steps": str(SAMPLE_STEPS), "guidance_scale": str(TINY_GUIDANCE), "scheduler": "DDIM",
            "weights": "EMA", "scaling_factor": repr(scaling_factor)}
    save_file({f"step_{k:04d}": v.half().contiguous() for k, v in sorted(samples.items())}, str(path), metadata=meta)


def load_samples(path: Path) -> tuple[dict[int, torch.Tensor], dict]:
    """The recorded latents by training step, and the metadata (prompts and things as lists)."""
    from safetensors import safe_open
    with safe_open(str(path), framework="pt") as f:
        meta = dict(f.metadata())
        names = f.keys()  # a safetensors file is not iterable itself
        latents = {int(k.split("_")[1]): f.get_tensor(k).float() for k in names}
    for key in ("prompts", "things", "seeds"):
        meta[key] = json.loads(meta[key])
    meta["things"] = [shapes.Thing(**t) for t in meta["things"]]
    return dict(sorted(latents.items())), meta


# --------------------------------------------------------------------------- stage 2

def train_unet(cfg: TrainConfig, data: dict, resume: bool, vae: AutoencoderKL | None = None):
    """Stage 2: text encoder + UNet on the noise-prediction loss; returns the EMA weights.

    With `vae` (only its config is used: the latents' size), it also records the EMA model's
    samples for fixed prompts at `cfg.sample_steps` into `SAMPLES_FILE` (kept beside the
    stage's checkpoint, so a resumed run keeps them).
    """
    out = Path(cfg.out) / "unet"
    tokenizer = tiny.load_tokenizer()
    if finished(out, cfg.unet_steps):
        return (tokenizer, CLIPTextModel.from_pretrained(out / "final" / "text_encoder"),
                UNet2DConditionModel.from_pretrained(out / "final" / "unet"))
    accelerator = Accelerator()
    text_encoder, unet = tiny.build_text_encoder(), tiny.build_unet()
    noise_scheduler = tiny.build_noise_scheduler()
    params = list(text_encoder.parameters()) + list(unet.parameters())
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.0, fused=True)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(cfg.warmup_steps, cfg.unet_steps))
    ema = EMAModel(params, decay=cfg.ema_decay, foreach=True)  # one fused update, not one per tensor
    text_encoder, unet, opt, sched = accelerator.prepare(text_encoder, unet, opt, sched)
    rng_state = RngState(cfg.seed + SEED_OFFSETS["unet"])
    accelerator.register_for_checkpointing(ema, rng_state)
    stage = Stage(accelerator, out, cfg.unet_steps, cfg.checkpoint_minutes)
    if resume:
        stage.resume()
    ema.to(accelerator.device)

    n, scale = len(data["mean"]), data["scaling_factor"]
    grid = tuple(data["mean"].shape[-2:])  # the grounding loss works on the layers at the latents' grid
    maps = grounding.GroundingMaps(grid)
    raw_unet = accelerator.unwrap_model(unet)
    record_at = parse_steps(cfg.sample_steps, cfg.unet_steps) if vae is not None else []
    things = sample_things(cfg.sample_prompts)
    samples_path = out / SAMPLES_FILE
    samples = load_samples(samples_path)[0] if resume and samples_path.exists() else {}

    def record():
        if stage.step in record_at and stage.step not in samples and accelerator.is_main_process:
            ema.store(params)
            ema.copy_to(params)
            was_training = unet.training
            text_encoder.eval()
            unet.eval()
            pipe = assemble(vae, accelerator.unwrap_model(text_encoder), tokenizer, accelerator.unwrap_model(unet),
                            scale, register=False)
            pipe.set_progress_bar_config(disable=True)
            samples[stage.step] = record_samples(pipe, things)
            save_samples(samples_path, samples, things, scale)
            ema.restore(params)
            text_encoder.train(was_training)
            unet.train(was_training)

    record()
    bar = tqdm(total=cfg.unet_steps, initial=stage.step, desc="UNet+text",
               disable=not accelerator.is_local_main_process)
    while stage.step < cfg.unet_steps:
        rng = np.random.default_rng([cfg.seed, SEED_OFFSETS["unet"], stage.step, accelerator.process_index])
        idx = rng.integers(0, n, cfg.batch_size)
        captions = ["" if rng.random() < cfg.caption_dropout else caption_for(data["things"][i], rng) for i in idx]
        input_ids = tokenize(tokenizer, captions).to(accelerator.device)
        idx_t = torch.from_numpy(idx)
        eps = torch.randn(data["mean"][idx_t].shape, generator=rng_state.generator)
        latents = ((data["mean"][idx_t] + data["std"][idx_t] * eps) * scale).to(accelerator.device)
        with accelerator.accumulate(unet):
            with capture_cross_attention(raw_unet, maps) if cfg.grounding_weight else contextlib.nullcontext():
                loss = diffusion_loss(unet, text_encoder, latents, input_ids, noise_scheduler,
                                      rng_state.generator, cfg.snr_gamma)
            token_loss = torch.zeros(())
            if cfg.grounding_weight:
                objects = [[shapes.Thing(**t) for t in data["things"][i]] for i in idx]
                target, supervised = grounding.object_token_masks(tokenizer, captions, objects,
                                                                  data["masks"][idx_t].float())
                token_loss = grounding.token_loss(maps.mean(), target.to(accelerator.device),
                                                  supervised.to(accelerator.device))
                loss = loss + cfg.grounding_weight * token_loss
            optimizer_step(accelerator, loss, params, opt, sched)
        ema.step(params)
        stage.tick()
        if stage.step % 10 == 0:
            stage.log(loss=round(loss.item(), 5), token_loss=round(token_loss.item(), 4), lr=sched.get_last_lr()[0])
        bar.update(1)
        bar.set_postfix(loss=f"{loss.item():.4f}", token=f"{token_loss.item():.3f}")
        record()
    bar.close()
    stage.save()
    text_encoder, unet = accelerator.unwrap_model(text_encoder), accelerator.unwrap_model(unet)
    ema.copy_to(list(text_encoder.parameters()) + list(unet.parameters()))
    if accelerator.is_main_process:
        text_encoder.save_pretrained(out / "final" / "text_encoder")
        unet.save_pretrained(out / "final" / "unet")
    return tokenizer, text_encoder, unet


# --------------------------------------------------------------------------- assembling

def assemble(vae, text_encoder, tokenizer, unet, scaling_factor: float,
             register: bool = True) -> StableDiffusionPipeline:
    """Put the trained parts into a standard `StableDiffusionPipeline` (no safety checker).

    `register=False` leaves the VAE's config as it is (for samples during training: the
    pipeline then returns latents, and nothing is decoded).
    """
    if register:
        vae.register_to_config(scaling_factor=scaling_factor)
    return StableDiffusionPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
        scheduler=tiny.build_scheduler(), safety_checker=None, feature_extractor=None,
        requires_safety_checker=False,
    )


def export(pipe: StableDiffusionPipeline, folder: Path, card: dict, samples: Path | None = None) -> None:
    """Save in fp16 safetensors (half the bytes; `load_pipeline` loads fp32 on a CPU) + a model card.

    `samples`, the latents recorded during training, are copied beside the weights.
    """
    if folder.exists():
        shutil.rmtree(folder)
    pipe.to(torch.float16).save_pretrained(folder, safe_serialization=True)
    pipe.to(torch.float32)
    # transformers 5 saves the tokenizer as one 3.6 MB tokenizer.json; the CLIP vocab + merges
    # it was built from hold the same tokenizer in 1.5 MB.
    shutil.rmtree(folder / "tokenizer")
    shutil.copytree(tiny.TOKENIZER_DIR, folder / "tokenizer")
    (folder / "training.json").write_text(json.dumps(card, indent=2) + "\n")
    if samples is not None and samples.exists():
        shutil.copy(samples, folder / SAMPLES_FILE)


STAGES = ("vae", "encode", "decoder", "unet")
DENOISERS = {"unet": "the tiny engine: VAE, text encoder and UNet on the noise-prediction objective (this module)",
             "sd3-flow": "the tiny-flow engine: SD3's transformer on rectified flow, with the tiny engine's frozen "
                         "VAE and text encoder (sdlab.train_flow; --help after it lists its options)"}


def stage_seconds(out: Path) -> dict[str, float]:
    """Compute time of each finished or checkpointed stage, summed over resumed runs."""
    seconds = {}
    for name in ("vae", "decoder", "unet"):
        path = out / name / "checkpoint" / "step.json"
        if path.exists():
            seconds[name] = json.loads(path.read_text()).get("seconds", 0.0)
    if (out / "latents.pt").exists():
        seconds["encode"] = torch.load(out / "latents.pt")["seconds"]
    return seconds


def main(argv=None) -> None:
    which = argparse.ArgumentParser(add_help=False)
    which.add_argument("--denoiser", choices=DENOISERS, default="unet")
    chosen, rest = which.parse_known_args(argv)
    if chosen.denoiser == "sd3-flow":
        from . import train_flow
        return train_flow.main(rest)
    parser = argparse.ArgumentParser(prog="python -m sdlab.train", description=__doc__.split("\n\n")[0])
    parser.add_argument("--denoiser", choices=DENOISERS, default="unet",
                        help="; ".join(f"{name}: {what}" for name, what in DENOISERS.items()))
    for field, default in asdict(TrainConfig()).items():
        parser.add_argument("--" + field.replace("_", "-"), type=type(default), default=default)
    parser.add_argument("--resume", action="store_true", help="continue from the checkpoints in --out")
    parser.add_argument("--stages", default=",".join(STAGES),
                        help="stages to run, in order (default: all). 'decoder' needs only 'vae', so it can "
                             "run in a second process beside 'encode,unet'")
    parser.add_argument("--export", type=Path, default=None,
                        help=f"save the fp16 pipeline here (e.g. {tiny.TINY_DIR})")
    args = parser.parse_args(argv)
    cfg = TrainConfig(**{k: getattr(args, k) for k in asdict(TrainConfig())})
    started = time.time()
    stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    if unknown := set(stages) - set(STAGES):
        parser.error(f"unknown stage(s) {sorted(unknown)}; choose from {STAGES}")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    set_seed(cfg.seed)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(asdict(cfg), indent=2))
    vae = train_vae(cfg, args.resume)
    data = None
    if "encode" in stages or "unet" in stages:
        accelerator = Accelerator()
        with accelerator.main_process_first():  # one process encodes; the others then read latents.pt
            data = encode_dataset(vae.to(accelerator.device), cfg.out, cfg.num_images, cfg.seed, cfg.p_two)
    decoder_vae = train_decoder(cfg, vae, args.resume) if "decoder" in stages else None
    if "unet" not in stages:
        print(f"stages {stages} done; run the rest (e.g. --stages unet --resume) to assemble the pipeline")
        return
    tokenizer, text_encoder, unet = train_unet(cfg, data, args.resume, vae=vae)
    if decoder_vae is None:  # the decoder stage ran elsewhere (or not at all)
        decoder_vae = train_decoder(cfg, vae, resume=True) if (out / "decoder" / "final").exists() else vae
    pipe = assemble(decoder_vae.cpu(), text_encoder.cpu(), tokenizer, unet.cpu(), data["scaling_factor"])
    pipe.save_pretrained(out / "pipeline")
    seconds = stage_seconds(out)
    card = {"command": "python -m sdlab.train " + " ".join(argv if argv is not None else sys.argv[1:]),
            "config": asdict(cfg), "scaling_factor": data["scaling_factor"],
            "seconds": seconds, "sequential_minutes": round(sum(seconds.values()) / 60, 1),
            "torch_threads": torch.get_num_threads(), "device": "cpu" if not torch.cuda.is_available() else "cuda",
            "wall_minutes_this_command": round((time.time() - started) / 60, 1)}
    (out / "training.json").write_text(json.dumps(card, indent=2) + "\n")
    if args.export:
        export(pipe, args.export, card, out / "unet" / SAMPLES_FILE)
    print(f"done: {card['sequential_minutes']} min of training in all; pipeline in {out / 'pipeline'}")


if __name__ == "__main__":
    main()
