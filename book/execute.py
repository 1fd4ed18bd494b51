"""Execute one notebook of the series for the book, without touching the original.

    python book/execute.py notebooks/00_tour.ipynb build/book-src/00_tour.ipynb

Runs every cell in a fresh kernel (the notebook's own kernelspec) with the notebook's folder as the working
directory, as Jupyter does, and stops with the failing cell's traceback on the first error. The executed copy is
written to DEST only (through a temporary file, so a failed run leaves no DEST behind); the source is only read.

ipywidgets outputs need a live kernel, so each is replaced by a short note (the static figure every widget cell also
draws stays); the saved widget state goes too. Every other output (text/html explorers included) is kept as it is.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
WIDGET_NOTE = ('<p class="sdlab-widget-note">An interactive widget was here: it needs a running kernel. '
               "Open the notebook in Jupyter (<code>make lab</code>) to use it.</p>")


def replace_widgets(nb) -> int:
    """Swap each widget view for the note; returns how many were replaced."""
    replaced = 0
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            if WIDGET_MIME in output.get("data", {}):
                output["data"] = {"text/html": WIDGET_NOTE, "text/plain": "[an interactive widget: needs a kernel]"}
                replaced += 1
    nb.metadata.pop("widgets", None)
    return replaced


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path)
    parser.add_argument("dest", type=Path)
    parser.add_argument("--timeout", type=int, default=600, help="seconds one cell may run (default 600)")
    args = parser.parse_args(argv)
    if args.source.resolve() == args.dest.resolve():
        parser.error("DEST must not be the source notebook: the book never writes into notebooks/")

    nb = nbformat.read(args.source, as_version=4)
    start = time.perf_counter()
    client = NotebookClient(nb, timeout=args.timeout, resources={"metadata": {"path": str(args.source.parent)}})
    try:
        client.execute()
    except CellExecutionError as err:
        print(err, file=sys.stderr)
        print(f"{args.source}: a cell failed (above); the book is not built", file=sys.stderr)
        return 1
    widgets = replace_widgets(nb)
    args.dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.dest.with_name(args.dest.name + ".tmp")
    nbformat.write(nb, tmp)
    os.replace(tmp, args.dest)
    print(f"{args.source.name}: executed in {time.perf_counter() - start:.0f} s"
          + (f" ({widgets} widget{'s' * (widgets != 1)} noted)" if widgets else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
