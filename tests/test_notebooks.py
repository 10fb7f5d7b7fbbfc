"""The tutorial notebooks: committed clean, a course's shape, and every one runs — as a learner.

Each ``tutorials/*.ipynb`` is executed with nbclient (kernel ``python3``, working directory
``tutorials/``) the way a learner runs it first, **without** the answers: every exercise cell
must then report in one line that it is not done yet, and every cell after it must still run.
Right after each exercise cell the test runs the same cell once more with the reference answer
(``SOLUTIONS = True``) in a copy of the kernel's namespace, so nothing the answer defines leaks
into the cells that follow; the answer must pass its check. Then every claim the prose makes
about the printed output (``tutorials/claims/<notebook>.py``) is checked against that output.
The run time of every notebook is printed (the course promises under two minutes).
"""

from __future__ import annotations

import importlib.util
import re
import time
from pathlib import Path
from typing import Any

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
EXERCISE = "# ✏️ Exercise"  # the first line of every exercise cell
# The exercise cell once more, with its reference answer, in a copy of the kernel's namespace.
ANSWER_RUN = 'exec(compile({source!r}, "<answer>", "exec"), {{**globals(), "SOLUTIONS": True}})'
# Numbers that prose may only quote when a claim backs them: decimals and percentages.
QUOTED_NUMBER = re.compile(r"(?<![\w.])\d+\.\d+|\d+(?:\.\d+)?\s?%")

notebooks = pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])


def read(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(path, as_version=4)


def code_cells(nb: nbformat.NotebookNode) -> list[tuple[int, nbformat.NotebookNode]]:
    return [(i, cell) for i, cell in enumerate(nb.cells) if cell.cell_type == "code"]


def markdown(nb: nbformat.NotebookNode) -> str:
    """All the markdown of a notebook, whitespace collapsed (claims are matched in it)."""
    text = "\n".join(cell.source for cell in nb.cells if cell.cell_type == "markdown")
    return " ".join(text.split())


def claims_of(path: Path) -> list[dict[str, Any]]:
    """The claims of ``tutorials/claims/<notebook>.py`` (an empty list if it has none)."""
    file = TUTORIALS / "claims" / f"{path.stem}.py"
    if not file.exists():
        return []
    spec = importlib.util.spec_from_file_location(f"claims_{path.stem}", file)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return list(module.CLAIMS)


def printed(cell: nbformat.NotebookNode) -> str:
    """What a code cell printed (its stream outputs, and plain-text results)."""
    parts = []
    for out in cell.get("outputs", []):
        if out.get("output_type") == "stream":
            parts.append(out.get("text", ""))
        elif "text/plain" in out.get("data", {}) and "image/png" not in out.get("data", {}):
            parts.append(out["data"]["text/plain"] + "\n")
    return "".join(parts)


# ---------------------------------------------------------------------- without running


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
def test_notebook_opens_with_objectives_prerequisites_and_time(path):
    nb = read(path)
    assert nb.cells and nb.cells[0].cell_type == "markdown", f"{path.name}: no markdown intro"
    intro = nb.cells[0].source
    assert intro.lstrip().startswith("#"), f"{path.name}: the intro needs a title"
    for part in ("**Learning objectives.**", "**Prerequisites.**", "**Time:**"):
        assert part in intro, f"{path.name}: the intro has no {part}"
    cells = code_cells(nb)
    assert cells and SWITCH in cells[0][1].source, f"{path.name}: the first code cell sets {SWITCH}"
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3"


@notebooks
def test_every_exercise_has_a_difficulty_a_check_and_a_reference_answer(path):
    nb = read(path)
    headings = re.findall(r"^### ✏️ Exercise .*$", "\n".join(c.source for c in nb.cells), re.M)
    for heading in headings:
        assert re.search(r"[★☆]{3}", heading), f"{path.name}: no difficulty in {heading!r}"
    exercises = [cell for _, cell in code_cells(nb) if cell.source.startswith(EXERCISE)]
    assert len(exercises) == len(headings), f"{path.name}: {len(headings)} headings, cells differ"
    for cell in exercises:
        assert "if SOLUTIONS:" in cell.source and "from solutions." in cell.source, cell.source
        assert re.search(r"\bcheck_\w+\(", cell.source), f"{path.name}: unchecked {cell.source}"
    for i, cell in code_cells(nb):
        if "NotImplementedError" in cell.source or "from solutions." in cell.source:
            assert cell.source.startswith(EXERCISE), f"{path.name}, cell {i}: not an exercise"


@notebooks
def test_every_think_about_it_question_has_a_collapsed_answer(path):
    for cell in read(path).cells:
        if cell.cell_type == "markdown" and "## Think about it" in cell.source:
            section = cell.source.split("## Think about it", 1)[1].split("\n## ", 1)[0]
            questions = re.findall(r"^\d+\. ", section, re.M)
            answers = section.count("<details><summary>Answer</summary>")
            assert questions and answers == len(questions), (
                f"{path.name}: {len(questions)} questions, {answers} <details> answers"
            )


def test_the_maths_is_written_as_display_equations():
    with_equations = [p.name for p in NOTEBOOKS if "$$" in markdown(read(p))]
    assert len(with_equations) >= 10, with_equations


def test_notebooks_import_earlier_work_from_the_library_not_from_other_answers():
    """No copy-paste chain: an answer module never imports another notebook's answers."""
    for module in (TUTORIALS / "solutions").glob("ex*.py"):
        assert "from solutions" not in module.read_text(), f"{module.name} imports other answers"


@notebooks
def test_every_quoted_number_is_backed_by_a_claim(path):
    nb, claims = read(path), claims_of(path)
    quotes = " ".join(" ".join(c["quote"].split()) for c in claims)
    text = markdown(nb)
    text = re.sub(r"\$\$.*?\$\$|\$[^$]*\$|`[^`]*`", " ", text)  # equations and code: not prose
    text = re.sub(r"<details>.*?</details>", " ", text)  # worked answers derive, not quote
    number = int(path.name[:2])  # exercise numbers (2.1, 10.2) are names, not measurements
    text = re.sub(rf"(?<![\d.]){number}\.\d(?!\d)", " ", text) if number else text
    text = re.sub(r"[Ee]xercises? \d+\.\d(?!\d)", " ", text)  # another notebook's exercise
    unbacked = [n for n in QUOTED_NUMBER.findall(text) if n not in quotes]
    assert not unbacked, f"{path.name}: numbers quoted in prose without a claim: {unbacked}"
    ids = {cell.get("id") for cell in nb.cells}
    for claim in claims:
        assert " ".join(claim["quote"].split()) in markdown(nb), f"{path.name}: {claim['quote']!r}"
        assert claim["cell"] in ids, f"{path.name}: no cell with id {claim['cell']!r}"


# -------------------------------------------------------------------------- running them


def as_a_learner(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The notebook with a run of the reference answer after each exercise cell."""
    cells = []
    for cell in nb.cells:
        cells.append(cell)
        if cell.cell_type == "code" and cell.source.startswith(EXERCISE):
            answer = nbformat.v4.new_code_cell(ANSWER_RUN.format(source=cell.source))
            answer.id, answer.metadata["answer_of"] = f"{cell.id}-answer", cell.id
            cells.append(answer)
    nb.cells = cells
    return nb


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


def _number(text: str) -> float:
    """A number read from printed output: ``0.92``, ``1.2e-06``, or ``True``/``False`` (1/0)."""
    booleans = {"True": 1.0, "False": 0.0}
    return booleans[text] if text in booleans else float(text)


def check_claims(path: Path, nb: nbformat.NotebookNode) -> list[str]:
    """Every claim of ``path`` that its executed output does not back, in words."""
    by_id = {cell.get("id"): cell for cell in nb.cells}
    failures = []
    for claim in claims_of(path):
        output = printed(by_id[claim["cell"]])
        found = re.search(claim["read"], output)
        if found is None:
            failures.append(f"{claim['quote']!r}: {claim['read']!r} not in\n{output}")
            continue
        numbers = {name: _number(value) for name, value in found.groupdict().items()}
        if not eval(claim["holds"], {"abs": abs, "min": min, "max": max, "sum": sum}, numbers):
            failures.append(f"{claim['quote']!r}: {claim['holds']} is false for {numbers}")
    return failures


@notebooks
def test_notebook_runs_as_a_learner_and_its_prose_matches_its_output(path, monkeypatch, capsys):
    monkeypatch.delenv("MINITRANSFORMER_SOLUTIONS", raising=False)  # a learner's first run
    monkeypatch.setenv("MPLBACKEND", "Agg")
    # One BLAS thread: notebooks run small matrices, where OpenBLAS threads only wait on each
    # other (a loop of MiniLM passes ran 4x slower with two threads on a busy 2-core machine).
    # The numbers the prose quotes are the same with 1 and 2 threads.
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "1")
    nb = as_a_learner(read(path))
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
    for _, cell in code_cells(nb):
        text = printed(cell)
        if cell.source.startswith(EXERCISE):  # the learner's run: one line, not done yet
            lines = text.splitlines()
            assert len(lines) == 1 and "not done yet" in lines[0], f"{cell.source}\n{text}"
        if "answer_of" in cell.metadata:  # the reference answer passes its check
            assert "✓" in text and "not done yet" not in text, f"{cell.source}\n{text}"
    shown_as_text = _figures_shown_as_text(nb)
    assert not shown_as_text, (
        f"{path.name}: cells {shown_as_text} show a Figure as text, not as a picture; "
        "start the setup cell with `%matplotlib inline`"
    )
    wrong = check_claims(path, nb)
    assert not wrong, f"{path.name}: prose that its output contradicts:\n" + "\n".join(wrong)
