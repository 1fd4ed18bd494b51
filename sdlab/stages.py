"""Bookkeeping shared by the training commands (`sdlab.train`, `sdlab.train_flow`): checkpointed stages.

- `Stage`: checkpoints (accelerate's `save_state`) every few minutes, a CSV loss log, the time spent, `--resume`;
- `RngState`: a torch.Generator that is checkpointed with the rest, so a resumed run draws the same numbers;
- `encode_dataset`: the training scenes drawn once and encoded once by the VAE (the "pre-encoded latents" trick),
  kept as each image's posterior mean and std, with the objects' masks on the latent grid;
- `caption_for`: a fresh wording of a stored scene's caption for every draw.
"""
from __future__ import annotations

import csv
import json
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from accelerate import Accelerator

from . import grounding, latents, shapes
from .images import images_to_tensor

# Each stage draws its own random numbers from the run's seed plus its offset, so that changing one
# stage (more VAE steps, say) leaves the others' draws as they were.
SEED_OFFSETS = {"vae": 1, "dataset": 2, "unet": 3, "decoder": 4}


class Stage:
    """Checkpoints (accelerate's save_state), a CSV loss log and a progress bar for one stage."""

    def __init__(self, accelerator: Accelerator, folder: Path, total: int, every_minutes: float):
        self.accelerator, self.folder, self.total = accelerator, folder, total
        self.every = every_minutes * 60
        self.folder.mkdir(parents=True, exist_ok=True)
        self.step = 0
        self.seconds = 0.0  # time spent in this stage's steps, summed over resumed runs
        self.ckpt = folder / "checkpoint"
        self.log_path = folder / "log.csv"
        self.last_save = self.last_tick = time.time()

    def resume(self) -> int:
        if (self.ckpt / "step.json").exists():
            self.accelerator.load_state(str(self.ckpt))
            saved = json.loads((self.ckpt / "step.json").read_text())
            self.step, self.seconds = saved["step"], saved.get("seconds", 0.0)
            self.last_tick = time.time()
            self.accelerator.print(f"resumed {self.folder.name} at step {self.step}")
            if self.log_path.exists() and self.accelerator.is_main_process:  # drop rows the checkpoint does not cover
                lines = self.log_path.read_text().splitlines(keepends=True)
                kept = [line for line in lines[1:] if int(line.split(",")[0]) <= self.step]
                self.log_path.write_text("".join(lines[:1] + kept))
        return self.step

    def save(self):
        self.accelerator.save_state(str(self.ckpt))
        if self.accelerator.is_main_process:
            (self.ckpt / "step.json").write_text(json.dumps({"step": self.step, "seconds": round(self.seconds, 1)}))
        self.last_save = time.time()

    def log(self, **values):
        if not self.accelerator.is_main_process:
            return
        new = not self.log_path.exists()
        with self.log_path.open("a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=["step", "time", *values])
            if new:
                w.writeheader()
            w.writerow({"step": self.step, "time": round(time.time(), 1), **values})

    def tick(self):
        self.step += 1
        now = time.time()
        self.seconds, self.last_tick = self.seconds + now - self.last_tick, now
        if time.time() - self.last_save > self.every:
            self.save()


def finished(out: Path, steps: int) -> bool:
    """A stage is finished when its final weights exist and its checkpoint reached `steps`."""
    step_file = out / "checkpoint" / "step.json"
    return (out / "final").is_dir() and step_file.exists() and json.loads(step_file.read_text())["step"] >= steps


def optimizer_step(accelerator: Accelerator, loss: torch.Tensor, params, opt, sched, max_norm: float = 1.0) -> None:
    """Backpropagate `loss`, clip the gradients' norm to `max_norm`, step the optimiser and its learning-rate
    schedule, and clear the gradients (call it inside `accelerator.accumulate`)."""
    accelerator.backward(loss)
    accelerator.clip_grad_norm_(params, max_norm)
    opt.step()
    sched.step()
    opt.zero_grad()


class RngState:
    """A torch.Generator that accelerate checkpoints with the rest of the state."""

    def __init__(self, seed: int):
        self.generator = torch.Generator().manual_seed(seed)

    def state_dict(self):
        return {"state": self.generator.get_state()}

    def load_state_dict(self, state):
        self.generator.set_state(state["state"])


def scene_masks(scenes: list[shapes.Scene], grid: tuple[int, int]) -> torch.Tensor:
    """(n, 2, h, w) fp16: how much of each latent cell each object covers (zeros: no second object)."""
    masks = torch.zeros(len(scenes), 2, *grid, dtype=torch.float16)
    for i, scene in enumerate(scenes):
        for k, mask in enumerate(scene.masks):
            masks[i, k] = torch.from_numpy(grounding.cell_coverage(mask, grid))
    return masks


@torch.no_grad()
def encode_dataset(vae, out: str | Path, num_images: int, seed: int, p_two: float) -> dict:
    """Draw `num_images` scenes (seeded by the run's `seed` plus the dataset's offset) once and keep their
    posterior mean and std (8x8x4 each), and the objects' masks on the latent grid (for the grounding loss)."""
    path = Path(out) / "latents.pt"
    if path.exists():
        data = torch.load(path)
        if "masks" not in data:  # saved before the grounding loss: the same scenes, drawn again
            scenes = shapes.sample(num_images, seed=seed + SEED_OFFSETS["dataset"], p_two=p_two)
            if data["things"] != [[asdict(t) for t in s.things] for s in scenes]:
                raise ValueError(f"{path} holds other scenes than this config draws; delete it to encode again")
            data["masks"] = scene_masks(scenes, tuple(data["mean"].shape[-2:]))
            torch.save(data, path)
        return data
    t0 = time.time()
    scenes = shapes.sample(num_images, seed=seed + SEED_OFFSETS["dataset"], p_two=p_two)
    vae.eval()
    mean, std = latents.posterior(vae, images_to_tensor(shapes.batch(scenes)[0]), batch_size=256)
    data = {"mean": mean.cpu(), "std": std.cpu(),
            "things": [[asdict(t) for t in s.things] for s in scenes]}
    data["masks"] = scene_masks(scenes, tuple(data["mean"].shape[-2:]))
    # SD's scaling factor: 1 / std of the latents, so that the diffusion model sees unit variance
    sample = data["mean"] + data["std"] * torch.randn_like(data["std"])
    data["scaling_factor"] = float(1.0 / sample.flatten().std())
    data["seconds"] = round(time.time() - t0, 1)
    torch.save(data, path)
    return data


def caption_for(things: list[dict], rng: np.random.Generator) -> str:
    """A fresh wording of a stored scene's caption (new wording every epoch)."""
    things = [shapes.Thing(**t) for t in things]
    if len(things) == 2:
        return shapes.describe_pair(things[0], things[1], rng)
    return shapes.describe(things[0], rng)
