"""A mistake on the command line ends with one clear line on stderr and exit code 2.

Never a traceback, and never after the work: ``--out`` is checked before a model is loaded or
trained. Each class of mistake is tried with several inputs, in-process through ``main(argv)``
(stderr captured), and once through a real subprocess.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

import minitransformer.pretrained
import minitransformer.training
from minitransformer.cli import main


def fails(argv: list[str], capsys) -> str:
    """Run the CLI; check it exits with 2 and one line on stderr, nothing on stdout's end;
    return that line."""
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 2
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1, f"one line, got {captured.err!r}"
    assert "Traceback" not in captured.err + captured.out
    return lines[0]


@pytest.fixture
def no_work(monkeypatch):
    """Loading a model or training one fails the test: the CLI must refuse before."""

    def forbidden(*args, **kwargs):
        raise AssertionError("the CLI started work before checking its arguments")

    monkeypatch.setattr(minitransformer.pretrained, "load_pretrained", forbidden)
    monkeypatch.setattr(minitransformer.training, "train_task", forbidden)


def unwritable_folder(tmp_path: Path) -> Path:
    """A folder no file can be created in: read-only by its mode, or (for root, who ignores
    modes) a read-only system folder."""
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    for candidate in (folder, Path("/sys"), Path("/proc/self")):
        try:
            with tempfile.TemporaryFile(dir=candidate):
                pass
        except OSError:
            return candidate
    pytest.skip("no folder here refuses to be written (root on a writable /sys?)")


# ----------------------------------------------------------------------------- --out


@pytest.mark.parametrize("command", [["demo"], ["show", "a cat"]])
def test_figures_out_must_be_a_folder_that_can_be_written(command, tmp_path, capsys, no_work):
    a_file = tmp_path / "a-file.png"
    a_file.write_text("not a folder")
    line = fails([*command, "--out", str(a_file)], capsys)
    assert f"--out '{a_file}' is a file, but figures need a folder" in line
    assert a_file.read_text() == "not a folder", "the file is left alone"

    under_a_file = a_file / "figures"
    line = fails([*command, "--out", str(under_a_file)], capsys)
    assert f"--out '{under_a_file}': cannot create the folder: " in line

    read_only = unwritable_folder(tmp_path)
    line = fails([*command, "--out", str(read_only)], capsys)
    assert f"--out '{read_only}': cannot write in '{read_only}': " in line
    nested = read_only / "figures"
    line = fails([*command, "--out", str(nested)], capsys)
    assert f"--out '{nested}': cannot " in line


def test_an_existing_folder_is_reused(tmp_path, monkeypatch, capsys):
    import minitransformer.cli

    monkeypatch.setattr(minitransformer.cli, "write_figures", lambda *args: [])
    (tmp_path / "mine.txt").write_text("kept")
    assert main(["show", "a cat", "--out", str(tmp_path)]) == 0
    assert main(["show", "a cat", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "mine.txt").read_text() == "kept"


def test_train_out_must_be_a_new_file_in_a_folder_that_can_be_written(
    tmp_path, capsys, no_work, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    line = fails(["train", "reverse", "--out", str(tmp_path)], capsys)
    assert f"--out '{tmp_path}' is a folder, but a checkpoint is one file" in line
    assert "model.npz" in line

    existing = tmp_path / "model.npz"
    existing.write_bytes(b"precious")
    line = fails(["train", "reverse", "--out", str(existing)], capsys)
    assert f"--out '{existing}' already exists: pass --overwrite to replace it" in line
    Path("reverse_seed3.npz").write_bytes(b"precious")  # the default name is checked too
    line = fails(["train", "reverse", "--seed", "3"], capsys)
    assert "--out 'reverse_seed3.npz' already exists" in line
    assert existing.read_bytes() == b"precious"

    missing = tmp_path / "no-such-folder" / "model.npz"
    line = fails(["train", "reverse", "--out", str(missing)], capsys)
    assert f"the folder '{missing.parent}' does not exist" in line

    read_only = unwritable_folder(tmp_path) / "model.npz"
    line = fails(["train", "reverse", "--out", str(read_only)], capsys)
    assert f"--out '{read_only}': cannot write in '{read_only.parent}': " in line


def test_train_overwrites_only_when_asked(tmp_path, capsys, monkeypatch):
    existing = tmp_path / "model.npz"
    existing.write_bytes(b"old")
    assert main(["train", "reverse", "--steps", "1", "--out", str(existing), "--overwrite"]) == 0
    assert existing.read_bytes() != b"old"
    assert f"saved {existing}" in capsys.readouterr().out


# ----------------------------------------------------------------------------- numbers


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "reverse", "--seed", "-1"], "argument --seed: must be at least 0, got -1"),
        (["train", "reverse", "--seed", "-12345678901234567890"], "must be at least 0"),
        (["train", "reverse", "--seed", "1.5"], "argument --seed: expected a whole number, got"),
        (["train", "reverse", "--seed", "x"], "expected a whole number, got 'x'"),
        (["train", "reverse", "--steps", "0"], "argument --steps: must be at least 1, got 0"),
        (["train", "reverse", "--steps", "-3"], "argument --steps: must be at least 1, got -3"),
        (["show", "a cat", "--layer", "-1"], "argument --layer: must be at least 0, got -1"),
        (["show", "a cat", "--head", "two"], "argument --head: expected a whole number"),
    ],
)
def test_bad_numbers_are_refused_before_any_work(argv, message, capsys, no_work):
    assert message in fails(argv, capsys)


# ----------------------------------------------------------------------------- names


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "nosuch"], "argument task: invalid choice: 'nosuch'"),
        (["train", "Reverse"], "invalid choice: 'Reverse'"),
        (["train", ""], "invalid choice: ''"),
        (["nosuch"], "argument command: invalid choice: 'nosuch'"),
        ([], "the following arguments are required: command"),
        (["show"], "the following arguments are required: text"),
        (["demo", "--layer", "2"], "unrecognized arguments: --layer 2"),
    ],
)
def test_unknown_commands_and_tasks_are_one_line(argv, message, capsys, no_work):
    assert message in fails(argv, capsys)


def test_an_unknown_or_broken_model_is_one_line(tmp_path, capsys):
    out = str(tmp_path / "out")
    line = fails(["show", "a cat", "--model", "no-such-model", "--out", out], capsys)
    assert "cannot load --model 'no-such-model'" in line and "nothing is downloaded" in line
    empty = tmp_path / "empty-model"
    empty.mkdir()
    line = fails(["show", "a cat", "--model", str(empty), "--out", out], capsys)
    assert f"cannot load --model '{empty}'" in line and "config.json" in line
    (empty / "config.json").write_text("{not json")
    line = fails(["show", "a cat", "--model", str(empty), "--out", out], capsys)
    assert f"cannot load --model '{empty}'" in line


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--layer", "6"], "--layer must be in [0, 6) and --head in [0, 12) for all-MiniLM-L6-v2"),
        (["--head", "12"], "got 3 and 12"),
        (["--query", "dog"], "--query 'dog' is not a token of the text; its tokens are ["),
        (["--query", "9"], "--query 9 is out of range: the text has 5 tokens, positions 0 to 4"),
        (["--query", "-1"], "--query -1 is out of range"),
        (["--query", ""], "--query '' is not a token of the text"),
    ],
)
def test_a_bad_layer_head_or_query_is_one_line(extra, message, tmp_path, capsys):
    line = fails(["show", "a cat sat", *extra, "--out", str(tmp_path)], capsys)
    assert message in line


@pytest.mark.parametrize("text", ["", "   ", "\n\t"])
def test_an_empty_text_is_one_line(text, tmp_path, capsys, no_work):
    assert "the text to show is empty" in fails(["show", text, "--out", str(tmp_path)], capsys)


@pytest.mark.parametrize("words", [511, 600, 5000])
def test_a_text_longer_than_the_model_is_refused_not_cut(words, tmp_path, capsys):
    line = fails(["show", "word " * words, "--out", str(tmp_path)], capsys)
    assert f"the text is {words + 2} tokens long with [CLS] and [SEP], more than the 512" in line


# ----------------------------------------------------------------------------- subprocess


def test_the_console_reports_one_line_and_exit_code_2(tmp_path):
    a_file = tmp_path / "taken"
    a_file.write_text("")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    for argv, message in [
        (["train", "reverse", "--seed", "-1"], "must be at least 0, got -1"),
        (["demo", "--out", str(a_file)], "is a file, but figures need a folder"),
    ]:
        done = subprocess.run(
            [sys.executable, "-m", "minitransformer.cli", *argv],
            capture_output=True, text=True, env=env, timeout=120, check=False,
        )  # fmt: skip
        assert done.returncode == 2
        assert done.stderr.count("\n") == 1 and message in done.stderr
        assert "Traceback" not in done.stderr
