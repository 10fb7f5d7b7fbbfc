"""The tutorial notebooks: committed clean, and every one runs top to bottom.

Each ``tutorials/*.ipynb`` is executed with nbclient (kernel ``python3``, working directory
``tutorials/`` so that ``solutions`` is importable) with ``MINITRANSFORMER_SOLUTIONS=1``: every
exercise cell then imports its reference answer from ``tutorials/solutions/`` and must pass its
learner check. A failing cell is reported with its number, its source and the error. The run
time of every notebook is printed (the course promises under two minutes on a laptop).
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat", reason="notebook tests need the 'test' extra")
nbclient = pytest.importorskip("nbclient", reason="notebook tests need the 'test' extra")
from nbclient.exceptions import CellExecutionError  # noqa: E402

TUTORIALS = Path(__file__).resolve().parent.parent / "tutorials"
NOTEBOOKS = sorted(TUTORIALS.glob("*.ipynb"))
CELL_TIMEOUT = 300  # seconds, per cell
NOTEBOOK_LIMIT = 120  # seconds, per notebook: the course's "under two minutes"
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")  # colours in IPython tracebacks
SWITCH = 'SOLUTIONS = os.environ.get("MINITRANSFORMER_SOLUTIONS") == "1"'

notebooks = pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])


def read(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(path, as_version=4)


def code_cells(nb: nbformat.NotebookNode) -> list[tuple[int, nbformat.NotebookNode]]:
    return [(i, cell) for i, cell in enumerate(nb.cells) if cell.cell_type == "code"]


def test_the_course_has_notebooks():
    assert NOTEBOOKS, f"no notebooks found in {TUTORIALS}"
    names = [p.name for p in NOTEBOOKS]
    assert "00_quick_start.ipynb" in names


@notebooks
def test_notebook_is_committed_without_outputs(path):
    nb = read(path)
    nbformat.validate(nb)
    with_outputs = [
        i for i, cell in code_cells(nb) if cell.outputs or cell.execution_count is not None
    ]
    assert not with_outputs, (
        f"{path.name}: cells {with_outputs} have outputs or execution counts; clear them "
        "(e.g. `jupyter nbconvert --clear-output --inplace`) before committing"
    )


@notebooks
def test_notebook_starts_with_an_intro_and_the_solutions_switch(path):
    nb = read(path)
    assert nb.cells and nb.cells[0].cell_type == "markdown", (
        f"{path.name}: the first cell must be the markdown intro (what you will see / learn)"
    )
    assert nb.cells[0].source.lstrip().startswith("#"), f"{path.name}: the intro needs a title"
    cells = code_cells(nb)
    assert cells, f"{path.name} has no code cells"
    first = cells[0][1].source
    assert SWITCH in first, f"{path.name}: the first code cell must define `{SWITCH}`"
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3"


@notebooks
def test_every_exercise_has_a_reference_answer_behind_the_switch(path):
    for i, cell in code_cells(read(path)):
        if "NotImplementedError" in cell.source:
            assert "if SOLUTIONS:" in cell.source and "from solutions." in cell.source, (
                f"{path.name}, cell {i}: an exercise cell must end with "
                "`if SOLUTIONS: from solutions.exNN import ...` and its check"
            )


def _failed_cell(nb: nbformat.NotebookNode) -> int:
    """The index of the first cell with an error output (cells count from 0, markdown too)."""
    for i, cell in code_cells(nb):
        if any(out.get("output_type") == "error" for out in cell.outputs):
            return i
    return -1


def _figures_shown_as_text(nb: nbformat.NotebookNode) -> list[int]:
    """Cells that displayed a matplotlib Figure only as its repr (no image)."""
    cells = []
    for i, cell in code_cells(nb):
        for out in cell.outputs:
            data = out.get("data", {})
            if data.get("text/plain", "").startswith("<Figure size") and "image/png" not in data:
                cells.append(i)
    return cells


@notebooks
def test_notebook_runs_top_to_bottom(path, monkeypatch, capsys):
    monkeypatch.setenv("MINITRANSFORMER_SOLUTIONS", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    # One BLAS thread: notebooks run small matrices, where OpenBLAS threads only wait on each
    # other (a loop of MiniLM passes ran 4x slower with two threads on a busy 2-core machine).
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "1")
    nb = read(path)
    client = nbclient.NotebookClient(
        nb,
        timeout=CELL_TIMEOUT,
        kernel_name="python3",
        resources={"metadata": {"path": str(TUTORIALS)}},
    )
    start = time.perf_counter()
    failure = None
    try:
        client.execute()
    except CellExecutionError as error:
        failure = error
    elapsed = time.perf_counter() - start
    if failure is not None:
        pytest.fail(
            f"{path.name}: cell {_failed_cell(nb)} raised {failure.ename}: {failure.evalue}\n"
            + ANSI_ESCAPE.sub("", str(failure)),
            pytrace=False,
        )
    with capsys.disabled():
        print(f"\n{path.name}: ran in {elapsed:.1f} s")
    assert elapsed < NOTEBOOK_LIMIT, f"{path.name} took {elapsed:.0f} s (limit {NOTEBOOK_LIMIT} s)"
    shown_as_text = _figures_shown_as_text(nb)
    assert not shown_as_text, (
        f"{path.name}: cells {shown_as_text} show a Figure as text, not as a picture; "
        "start the setup cell with `%matplotlib inline`"
    )
