"""pytest configuration shared by the unit tests and nbval.

nbval runs every notebook top to bottom (`--nbval-lax`: a cell fails only if it raises, or if it
is marked `# NBVAL_CHECK_OUTPUT` and its output changed). Checks inside notebooks are asserts,
so outputs are never compared; stderr (progress bars, warnings) and widget views never are.
"""
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def pytest_collectstart(collector):
    if collector.fspath and collector.fspath.ext == ".ipynb":
        collector.skip_compare += (
            "stderr",
            "text/html",
            "application/javascript",
            "application/vnd.jupyter.widget-view+json",
            "image/png",
        )
