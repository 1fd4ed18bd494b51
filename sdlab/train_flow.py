"""Train the tiny-flow engine: SD3's transformer and objective on the tiny engine's frozen VAE and text encoder.

One stage, where the tiny engine has three (`sdlab.train`): the VAE, the tokenizer and the text encoder are the
tiny engine's, frozen, so only the denoiser learns. The same 16,000 scenes as the tiny engine's training set
are encoded once with the shipped VAE (its posterior mean and std, scaled by its `scaling_factor`), and an
`SD3Transformer2DModel` (`sdlab.tiny_flow`) learns rectified flow on them (Esser et al., 2024):
x_t = (1 - t) x_0 + t eps with logit-normal t, predict the velocity eps - x_0
(`sdlab.losses.flow_matching_loss`). Captions are dropped 10% of the time, as for the tiny engine, so
that classifier-free guidance works; an EMA of the weights is what ships. No min-SNR weighting (that is an
epsilon-objective fix) and no grounding loss.

    python -m sdlab.train --denoiser sd3-flow                     # the run that made the shipped weights
    python -m sdlab.train --denoiser sd3-flow --resume            # carry on where a stopped run left off
    python -m sdlab.train --denoiser sd3-flow --steps 20 --out runs/flow-quick   # a smoke test

Checkpoints every few minutes, a CSV loss log and `--resume` work as in `sdlab.train`.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from diffusers import SD3Transformer2DModel
from diffusers.training_utils import EMAModel
from tqdm.auto import tqdm

from . import tiny_flow
from .engines import load_tiny
from .losses import flow_matching_loss, lr_lambda
from .stages import SEED_OFFSETS, RngState, Stage, caption_for, encode_dataset, finished, optimizer_step

SEED_OFFSET = 5  # this stage's random numbers: the run's seed plus this (sdlab.train's stages use 1-4)


@dataclass
class FlowTrainConfig:
    out: str = "runs/tiny-flow"
    seed: int = 0
    num_images: int = 16000  # the tiny engine's training scenes (same seed, so the same scenes)
    p_two: float = 0.2
    steps: int = 1600
    batch_size: int = 128
    lr: float = 1e-3
    warmup_steps: int = 100
    caption_dropout: float = 0.1
    logit_mean: float = 0.0  # SD3's best logit-normal setting (Esser et al., 2024, Sec. 5.1)
    logit_std: float = 1.0
    ema_decay: float = 0.995
    checkpoint_minutes: float = 4.0
    threads: int = 0  # 0: leave torch's default


def train_transformer(cfg: FlowTrainConfig, pipe, data: dict, resume: bool) -> SD3Transformer2DModel:
    """The transformer on the velocity objective, with `pipe`'s frozen text encoders; returns the EMA weights."""
    out = Path(cfg.out) / "transformer"
    if finished(out, cfg.steps):
        return SD3Transformer2DModel.from_pretrained(out / "final")
    accelerator = Accelerator()
    transformer = tiny_flow.build_transformer()
    params = list(transformer.parameters())
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.0, fused=True)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(cfg.warmup_steps, cfg.steps))
    ema = EMAModel(params, decay=cfg.ema_decay, foreach=True)
    transformer, opt, sched = accelerator.prepare(transformer, opt, sched)
    rng_state = RngState(cfg.seed + SEED_OFFSET)
    accelerator.register_for_checkpointing(ema, rng_state)
    stage = Stage(accelerator, out, cfg.steps, cfg.checkpoint_minutes)
    if resume:
        stage.resume()
    ema.to(accelerator.device)
    pipe.to(accelerator.device)
    n, scale = len(data["mean"]), pipe.vae.config.scaling_factor

    bar = tqdm(total=cfg.steps, initial=stage.step, desc="transformer", disable=not accelerator.is_local_main_process)
    while stage.step < cfg.steps:
        rng = np.random.default_rng([cfg.seed, SEED_OFFSET, stage.step, accelerator.process_index])
        idx = rng.integers(0, n, cfg.batch_size)
        captions = ["" if rng.random() < cfg.caption_dropout else caption_for(data["things"][i], rng) for i in idx]
        with torch.no_grad():
            prompt_embeds, _, pooled, _ = pipe.encode_prompt(
                captions, captions, None, do_classifier_free_guidance=False,
                max_sequence_length=tiny_flow.MAX_SEQUENCE_LENGTH)
        idx_t = torch.from_numpy(idx)
        eps = torch.randn(data["mean"][idx_t].shape, generator=rng_state.generator)
        latents = ((data["mean"][idx_t] + data["std"][idx_t] * eps) * scale).to(accelerator.device)

        def predict(x_t, timesteps, prompt_embeds=prompt_embeds, pooled=pooled):
            return transformer(hidden_states=x_t, timestep=timesteps, encoder_hidden_states=prompt_embeds,
                               pooled_projections=pooled).sample

        with accelerator.accumulate(transformer):
            loss = flow_matching_loss(predict, latents, rng_state.generator, cfg.logit_mean, cfg.logit_std)
            optimizer_step(accelerator, loss, params, opt, sched)
        ema.step(params)
        stage.tick()
        if stage.step % 10 == 0:
            stage.log(loss=round(loss.item(), 5), lr=sched.get_last_lr()[0])
        bar.update(1)
        bar.set_postfix(loss=f"{loss.item():.4f}")
    bar.close()
    stage.save()
    transformer = accelerator.unwrap_model(transformer)
    ema.copy_to(list(transformer.parameters()))
    if accelerator.is_main_process:
        transformer.save_pretrained(out / "final")
    return transformer


def export(pipe, folder: Path, card: dict) -> None:
    """Only what is new: the transformer (fp16 safetensors), the scheduler's config and the training card.

    The VAE, tokenizer and text encoder are the tiny engine's, loaded from `sdlab/assets/tiny-sd` by
    `load_pipeline("tiny-flow")`, so the package holds them once.
    """
    for part in ("transformer", "scheduler"):
        if (folder / part).exists():
            shutil.rmtree(folder / part)
    folder.mkdir(parents=True, exist_ok=True)
    pipe.transformer.to(torch.float16).save_pretrained(folder / "transformer", safe_serialization=True)
    pipe.transformer.to(torch.float32)
    pipe.scheduler.save_pretrained(folder / "scheduler")
    (folder / "training.json").write_text(json.dumps(card, indent=2) + "\n")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m sdlab.train --denoiser sd3-flow",
                                     description=__doc__.split("\n\n")[0])
    for field, default in asdict(FlowTrainConfig()).items():
        parser.add_argument("--" + field.replace("_", "-"), type=type(default), default=default)
    parser.add_argument("--resume", action="store_true", help="continue from the checkpoint in --out")
    parser.add_argument("--export", type=Path, default=None,
                        help=f"save the transformer here (e.g. {tiny_flow.FLOW_DIR})")
    args = parser.parse_args(argv)
    cfg = FlowTrainConfig(**{k: getattr(args, k) for k in asdict(FlowTrainConfig())})
    started = time.time()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    set_seed(cfg.seed)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(asdict(cfg), indent=2))
    base = load_tiny()
    base.vae.requires_grad_(False)
    text_encoder = tiny_flow.with_projection(base.text_encoder).requires_grad_(False)
    data = encode_dataset(base.vae, cfg.out, cfg.num_images, cfg.seed, cfg.p_two)
    pipe = tiny_flow.assemble(base.vae, text_encoder, base.tokenizer, tiny_flow.build_transformer())
    pipe.transformer = train_transformer(cfg, pipe, data, args.resume).cpu()
    pipe.to("cpu").save_pretrained(out / "pipeline")
    seconds = {"encode": data["seconds"],
               "transformer": json.loads((out / "transformer" / "checkpoint" / "step.json").read_text())["seconds"]}
    given = argv if argv is not None else sys.argv[1:]
    card = {"command": " ".join(["python -m sdlab.train --denoiser sd3-flow", *given]),
            "config": asdict(cfg), "scaling_factor": pipe.vae.config.scaling_factor,
            "dataset_seed_offset": SEED_OFFSETS["dataset"], "seconds": seconds,
            "sequential_minutes": round(sum(seconds.values()) / 60, 1),
            "parameters": sum(p.numel() for p in pipe.transformer.parameters()),
            "torch_threads": torch.get_num_threads(), "device": "cpu" if not torch.cuda.is_available() else "cuda",
            "wall_minutes_this_command": round((time.time() - started) / 60, 1)}
    (out / "training.json").write_text(json.dumps(card, indent=2) + "\n")
    if args.export:
        export(pipe, args.export, card)
    print(f"done: {card['sequential_minutes']} min of training in all; pipeline in {out / 'pipeline'}")


if __name__ == "__main__":
    main()
