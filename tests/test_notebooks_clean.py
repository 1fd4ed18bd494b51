"""Committed notebooks are clean (no outputs) and follow the series' conventions."""
import json
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


def test_the_series_is_all_there():
    """The tests below are parametrised over NOTEBOOKS: an empty glob would make them vanish, not fail."""
    assert [p.name[:2] for p in NOTEBOOKS] == [f"{i:02d}" for i in range(len(NOTEBOOKS))], [p.name for p in NOTEBOOKS]
    assert len(NOTEBOOKS) >= 9


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_committed_without_outputs(path):
    nb = json.loads(path.read_text())
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] == "code":
            assert not cell.get("outputs"), f"{path.name} cell {i} has outputs: clear them before committing"
            assert cell.get("execution_count") is None, f"{path.name} cell {i} has an execution count"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_ascii_name_and_title_cell(path):
    assert path.name.isascii()
    first = json.loads(path.read_text())["cells"][0]
    assert first["cell_type"] == "markdown" and "".join(first["source"]).startswith("# ")


def test_first_cells_state_the_counted_t4_cost():
    """Each notebook's first cell quotes its UNet work on a T4 as `python -m sdlab.cost --save` counted it."""
    from sdlab import cost

    costs = json.loads(cost.COSTS_FILE.read_text())
    for path in (p for p in NOTEBOOKS if p.name[0].isdigit()):
        assert path.stem in costs, f"{path.name}: run python -m sdlab.cost {path.stem} --save"
        first = "".join(json.loads(path.read_text())["cells"][0]["source"])
        sentence = cost.t4_sentence(path.stem)
        assert sentence in first, f"{path.name}: its first cell should say: {sentence}"
