"""The command line demo and the README's promises."""

from __future__ import annotations

from pathlib import Path

import matplotlib.image
import numpy as np

from minitransformer.cli import main
from minitransformer.trace import NAME_TABLE, name_table_markdown

README = Path(__file__).resolve().parents[1] / "README.md"


def test_demo_prints_the_trace_and_writes_a_heatmap(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    for name in ("embed.tokens", "blocks.0.attn.weights", "blocks.1.ffn.act", "blocks.1.out"):
        assert name in printed
    png = tmp_path / "attention_heatmap.png"
    image = matplotlib.image.imread(png)
    assert image.shape[0] > 300 and image.shape[1] > 300
    assert np.std(image[..., :3]) > 0.05, "the PNG shows a picture, not a blank canvas"


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
