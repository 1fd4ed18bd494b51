"""What each notebook costs on a Colab T4 with SD v1.5, counted rather than guessed.

Nearly all of a Stable Diffusion notebook's GPU time goes to UNet evaluations. So the series
is run once on the SD v1.5-shaped engine (`python -m sdlab.sdshaped`: SD v1.5's classes,
random weights, 128 px), with a hook that records every `UNet2DConditionModel` call: its batch,
its latent size, and whether gradients were on. A call of the SD-shaped UNet at latent size
(h, w) is what SD v1.5 would run at (h, w) x 64 / 16 -- the notebooks take their sizes from the
pipeline -- so its T4 cost is

    batch x (h w / 16^2) x T4_SECONDS_PER_SAMPLE     (x 3 with gradients: forward + backward)

T4_SECONDS_PER_SAMPLE is one 64x64 latent through SD v1.5's UNet in fp16 on a T4, from
diffusers' published benchmark ("PyTorch 2.0" optimization page, table "T4 (batch size: 1)",
SD txt2img, torch 2.0 without compile: 6.9 iterations/s, each one UNet call on a batch of 2 for
classifier-free guidance; its batch-4 row, 1.79 it/s on batches of 8, gives the same 0.07 s per
latent, so the cost is linear in the batch). Calls of the tiny engine's UNet (the claims the
notebooks check on it) cost milliseconds and are counted apart. Not counted: the VAE, the text
encoder, and downloading SD v1.5's fp16 weights (about 2.6 GB) the first time.

    python -m sdlab.cost                  # runs every notebook on the SD-shaped engine: a few minutes
    python -m sdlab.cost 05_full_pipeline # one notebook

With the environment variable SDLAB_COUNT_UNET set to a file, `import sdlab` records every UNet
call into it (one JSON line each); that is how the notebooks' kernels are counted.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from . import tiny

COUNT_VARIABLE = "SDLAB_COUNT_UNET"
T4_SECONDS_PER_SAMPLE = 1 / 6.9 / 2  # s per 64x64 latent per UNet call, SD v1.5 fp16 (see the docstring)
TRAINING_FACTOR = 3                  # forward + backward ~ 3 forwards
TINY_LATENT = tiny.IMAGE_SIZE // tiny.VAE_SCALE_FACTOR  # the tiny UNet's sample_size: its calls are counted apart
NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
# what each notebook's first cell quotes (tests/test_notebooks_clean.py checks)
COSTS_FILE = NOTEBOOKS / "t4_costs.json"


def _record(path: str):
    """A global forward hook that appends one line per UNet2DConditionModel call to `path`."""
    from diffusers import UNet2DConditionModel

    def hook(module, args, kwargs, output):
        if not isinstance(module, UNet2DConditionModel):
            return
        sample = args[0] if args else kwargs.get("sample")
        with open(path, "a") as f:
            f.write(json.dumps({"batch": int(sample.shape[0]), "h": int(sample.shape[-2]), "w": int(sample.shape[-1]),
                                "native": int(module.config.sample_size), "grad": torch.is_grad_enabled()}) + "\n")

    return torch.nn.modules.module.register_module_forward_hook(hook, with_kwargs=True)


def install_from_environment():
    """Called by `import sdlab`: record UNet calls when SDLAB_COUNT_UNET names a file."""
    path = os.environ.get(COUNT_VARIABLE)
    return _record(path) if path else None


def summarise(records: list[dict]) -> dict:
    """UNet calls, latents evaluated and the T4 estimate (seconds) from a notebook's records."""
    out = {"unet_calls": 0, "latents": 0, "largest_batch": 0, "training_calls": 0, "t4_seconds": 0.0, "tiny_calls": 0}
    for r in records:
        if r["native"] == TINY_LATENT:
            out["tiny_calls"] += 1
            continue
        area = r["h"] * r["w"] / r["native"] ** 2  # 1.0 at the engine's native size: 64x64 latents on SD v1.5
        seconds = r["batch"] * area * T4_SECONDS_PER_SAMPLE * (TRAINING_FACTOR if r["grad"] else 1)
        out["unet_calls"] += 1
        out["latents"] += r["batch"]
        out["largest_batch"] = max(out["largest_batch"], r["batch"])
        out["training_calls"] += int(r["grad"])
        out["t4_seconds"] += seconds
    out["t4_seconds"] = round(out["t4_seconds"], 1)
    return out


def t4_sentence(name: str) -> str:
    """The sentence each notebook's first cell states, from COSTS_FILE (what `--save` wrote)."""
    r = json.loads(COSTS_FILE.read_text())[name]
    if r["unet_calls"] == 0:
        why = "its UNet calls are all the tiny engine's" if r["tiny_calls"] else "forward diffusion needs no UNet"
        return f"**On a Colab T4 with SD v1.5:** no calls of SD's UNet ({why}; `python -m sdlab.cost`)."
    minutes = r["t4_seconds"] / 60
    time = ("under a minute" if minutes < 1 else "about a minute" if round(minutes) == 1
            else f"about {round(minutes)} minutes")
    return (f"**On a Colab T4 with SD v1.5:** {time} of UNet time ({r['unet_calls']} UNet calls on "
            f"{r['latents']} latents at 512x512 in fp16, at most {r['largest_batch']} per call; counted by "
            f"`python -m sdlab.cost` from diffusers' T4 benchmark), plus the first download of the fp16 weights "
            f"(about 2.6 GB).")


def read_log(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def run_notebook(name: str, engine: str, workdir: Path) -> dict:
    """Execute one notebook on `engine` with the counter on; returns its summary."""
    workdir.mkdir(parents=True, exist_ok=True)
    log = (workdir / f"{name}.jsonl").resolve()  # the kernels run in notebooks/
    log.unlink(missing_ok=True)
    env = {**os.environ, COUNT_VARIABLE: str(log), "SDLAB_ENGINE": engine, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute",
                           "--output-dir", str(workdir.resolve()), str(NOTEBOOKS / f"{name}.ipynb")], env=env,
                          capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{name} failed on {engine}:\n{done.stderr[-3000:]}")
    return summarise(read_log(log))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m sdlab.cost", description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", help="notebook names without .ipynb (default: all)")
    parser.add_argument("--engine", default="build/sd-shaped", help="the SD v1.5-shaped folder (made if missing)")
    parser.add_argument("--out", type=Path, default=Path("build/cost"))
    parser.add_argument("--save", action="store_true",
                        help=f"also write the figures to {COSTS_FILE} (the notebooks quote them)")
    args = parser.parse_args(argv)
    engine = Path(args.engine).resolve()
    if not (engine / "model_index.json").exists():
        from . import sdshaped
        sdshaped.main([str(engine)])
    names = args.notebooks or sorted(p.stem for p in NOTEBOOKS.glob("0*.ipynb"))
    results = {}
    for name in names:
        results[name] = run_notebook(name, str(engine), args.out)
        r = results[name]
        trained = f" ({r['training_calls']} with gradients)" if r["training_calls"] else ""
        print(f"{name:<22} {r['unet_calls']:>5} UNet calls on {r['latents']:>5} latents{trained} -> about "
              f"{r['t4_seconds'] / 60:.1f} min of UNet time on a T4 (+ {r['tiny_calls']} tiny-engine calls)",
              flush=True)
    (args.out / "cost.json").write_text(json.dumps(results, indent=2) + "\n")
    if args.save:
        saved = json.loads(COSTS_FILE.read_text()) if COSTS_FILE.exists() else {}
        COSTS_FILE.write_text(json.dumps({**saved, **results}, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
