"""Save the figures the notebooks draw as PNGs in figures/, for the README and for reading without a kernel.

A notebook cell whose metadata carries a tag "figure-NAME" is a figure cell: this script runs the
notebooks top to bottom (offline, on the CPU: the tiny engine) and writes the last image that such a
cell displays to figures/NN_NAME.png, where NN is the notebook's number. The figures are therefore
exactly what a learner sees, drawn by the notebooks' own code, never by a second copy of it.

    python scripts/make_figures.py                       # every notebook that has figure cells
    python scripts/make_figures.py notebooks/02_forward_diffusion.ipynb
"""
from __future__ import annotations

import argparse
import base64
import os
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
TAG = "figure-"


def figure_cells(nb) -> list[tuple[int, str]]:
    """(cell index, figure name) for every cell tagged figure-NAME."""
    found = []
    for i, cell in enumerate(nb.cells):
        for tag in cell.get("metadata", {}).get("tags", []):
            if tag.startswith(TAG):
                found.append((i, tag[len(TAG):]))
    return found


def make_figures(path: Path, out_dir: Path, timeout: int = 600) -> list[Path]:
    """Execute one notebook and save the last PNG of each figure cell; returns the files written."""
    nb = nbformat.read(path, as_version=4)
    wanted = figure_cells(nb)
    if not wanted:
        return []
    start = time.time()
    resources = {"metadata": {"path": str(path.parent)}}  # run from the notebook's folder
    NotebookClient(nb, timeout=timeout, kernel_name="python3", resources=resources).execute()
    print(f"{path.name}: executed in {time.time() - start:.0f} s")
    written = []
    prefix = path.stem.split("_")[0]
    for index, name in wanted:
        pngs = [o["data"]["image/png"] for o in nb.cells[index].get("outputs", [])
                if o.get("output_type") in ("display_data", "execute_result") and "image/png" in o.get("data", {})]
        if not pngs:
            raise RuntimeError(f"{path.name}: cell {index} is tagged {TAG}{name} but displayed no image")
        target = out_dir / f"{prefix}_{name}.png"
        target.write_bytes(base64.b64decode(pngs[-1]))
        written.append(target)
        print(f"  {target.relative_to(ROOT) if target.is_relative_to(ROOT) else target}")
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="notebooks to run (default: all in notebooks/)")
    parser.add_argument("--out", type=Path, default=ROOT / "figures")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the figures come from the bundled tiny engine
    args.out.mkdir(parents=True, exist_ok=True)
    paths = args.notebooks or sorted((ROOT / "notebooks").glob("*.ipynb"))
    written = [f for p in paths for f in make_figures(p.resolve(), args.out.resolve())]
    print(f"{len(written)} figures written to {args.out}")
    if not written:
        sys.exit("no cell is tagged figure-NAME in these notebooks")


if __name__ == "__main__":
    main()
