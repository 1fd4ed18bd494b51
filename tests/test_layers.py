"""sdlab's layers, written once: which modules each module may import.

A lesson helper never imports the command-line tools (`train` with its accelerate loop, `bench`);
nothing below the presentation layer imports `viz` or `widgets`; the foundations import nothing
of sdlab's but `errors`. A new module must be placed in a layer here before it can be imported.
"""
import ast
from pathlib import Path

import pytest

import sdlab

PACKAGE = Path(sdlab.__file__).resolve().parent

# Lowest first. A module may import any module of a lower layer; inside its own layer, only the
# modules listed in SAME_LAYER (so that the lessons stay a readable, acyclic web).
LAYERS = {
    "errors": {"errors"},  # every module may raise sdlab's errors
    "foundations": {"checks", "stats", "tiny", "tiny_flow", "images", "shapes"},
    "engines": {"engines"},
    "lessons": {"schedule", "text", "latents", "sampling", "editing", "losses", "grounding", "attention",
                "finetune", "flow", "architectures", "exercise_checks", "exercises"},
    "presentation": {"viz", "explorer", "widgets"},
    "tools": {"gpubench", "sdshaped", "cost", "stages", "train", "train_flow", "bench"},
    "package": {"__init__"},
}
SAME_LAYER = {
    "sampling": {"latents", "text"}, "editing": {"latents", "sampling"}, "attention": {"grounding", "text"},
    "tiny_flow": {"tiny"}, "architectures": {"latents"},
    "finetune": {"losses"}, "losses": {"flow"}, "grounding": set(), "flow": set(),
    "exercise_checks": {"architectures", "attention", "flow", "latents", "schedule", "text"},
    "exercises": {"exercise_checks"},
    "explorer": {"viz"}, "widgets": {"viz", "explorer"},
    "sdshaped": {"gpubench"}, "cost": {"sdshaped"}, "bench": {"gpubench"},
    # train's command line hands `--denoiser sd3-flow` over to train_flow; both keep their runs with stages
    "stages": set(), "train_flow": {"stages"}, "train": {"stages", "train_flow"},
}


def layer_of(module: str) -> int:
    for i, members in enumerate(LAYERS.values()):
        if module in members:
            return i
    raise KeyError(module)


def sdlab_imports(path: Path) -> set[str]:
    """Every sdlab module `path` imports, at the top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1:
                found |= {node.module.split(".")[0]} if node.module else {a.name for a in node.names}
            elif node.module and node.module.split(".")[0] == "sdlab":
                parts = node.module.split(".")
                found |= {parts[1]} if len(parts) > 1 else {a.name for a in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("sdlab.")}
    return found


MODULES = sorted(p.stem for p in PACKAGE.glob("*.py"))


def test_every_module_has_a_layer():
    placed = set().union(*LAYERS.values())
    assert set(MODULES) == placed, f"not placed: {set(MODULES) - placed}; placed but missing: {placed - set(MODULES)}"


@pytest.mark.parametrize("module", MODULES)
def test_imports_only_what_its_layer_allows(module):
    mine = layer_of(module)
    imported = sdlab_imports(PACKAGE / f"{module}.py") - {module}
    for other in imported:
        theirs = layer_of(other)
        assert theirs < mine or (theirs == mine and other in SAME_LAYER.get(module, set())), (
            f"sdlab.{module} (layer {list(LAYERS)[mine]}) imports sdlab.{other} (layer {list(LAYERS)[theirs]})")


def test_same_layer_imports_have_no_cycle():
    def reaches(start, goal, seen=()):
        return any(n == goal or (n not in seen and reaches(n, goal, (*seen, n))) for n in SAME_LAYER.get(start, ()))
    assert not [m for m in SAME_LAYER if reaches(m, m)]


def test_the_checker_sees_a_forbidden_import(tmp_path):
    """The test above can fail: a lesson helper importing the training command is caught."""
    bad = tmp_path / "latents.py"
    bad.write_text("from .train import diffusion_loss\n\ndef f():\n    from sdlab import widgets\n")
    imported = sdlab_imports(bad)
    assert imported == {"train", "widgets"}
    assert all(layer_of(m) > layer_of("latents") for m in imported)
