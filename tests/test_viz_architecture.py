"""The architecture diagram: boxes in the right order, listing every trace name with its shape."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
from matplotlib.colors import to_rgba
from matplotlib.patches import FancyBboxPatch

from minitransformer.config import EncoderConfig
from minitransformer.encoder import Encoder
from minitransformer.trace import NAME_TABLE, template_of
from viz.architecture import RESIDUAL_COLOR, architecture_diagram, diagram_boxes

MEANING_OF_LN1_MEAN = next(r.meaning for r in NAME_TABLE if r.name == "blocks.{l}.ln1.mean")

BERT_LIKE = EncoderConfig(n_layers=3, n_heads=4, d_model=32, d_ff=48, positional="learned",
                          activation="gelu", embed_layer_norm=True, type_vocab_size=2)  # fmt: skip


@pytest.fixture(scope="module")
def trace():
    _, trace = Encoder(BERT_LIKE, seed=0).run_with_trace([[1, 2, 3, 4, 5, 6, 7]])
    return trace


def name_lines(fig):
    """``{name: shape}`` from the monospace lines of the diagram's boxes."""
    lines = [t.get_text() for t in fig.axes[0].texts if t.get_fontfamily() == ["monospace"]]
    pairs = [line.split(maxsplit=1) for line in lines if not line.startswith("blocks.{l}")]
    return dict(pairs), len(pairs)


def titles(fig):
    """The bold texts of the diagram: box titles, then the block's repeat count."""
    return [t.get_text() for t in fig.axes[0].texts if t.get_fontweight() == "bold"]


def test_every_recorded_name_is_listed_once_with_its_live_shape(trace):
    fig = architecture_diagram(trace, layer=2)
    shapes, n_lines = name_lines(fig)
    assert n_lines == len(shapes), "no name listed twice"
    assert shapes["attn.weights"] == "(1, 4, 7, 7)"
    assert shapes["attn.q"] == "(1, 4, 7, 8)"
    assert shapes["ffn.pre"] == "(1, 7, 48)"
    assert shapes["embed.positions"] == "(7, 32)"
    assert shapes["token_ids"] == "(1, 7)"
    assert shapes["blocks.2.out"] == "(1, 7, 32)", "the output box names the last block"
    meanings = [t.get_text() for t in fig.axes[0].texts if t.get_color() == "#595959"]
    assert "softmax of the masked scores over keys; rows sum to 1" in meanings
    # each name with its meaning from the trace's name table; long meanings wrap onto more lines
    assert len(meanings) > n_lines
    assert MEANING_OF_LN1_MEAN in " ".join(meanings)
    for name in trace.names():  # every name of the trace, block names once without prefix
        short = template_of(name).removeprefix("blocks.{l}.")
        assert shapes[short] == str(trace[name].shape)


def test_boxes_in_post_norm_order_with_config_panel(trace):
    fig = architecture_diagram(trace)
    assert titles(fig) == [
        "Token ids",
        "Embedding: W_E[token_ids] + W_pos[positions] + W_type[token_type_ids]",
        "Embedding LayerNorm",
        "Multi-head self-attention (4 heads x d_head 8)",
        "Add & LayerNorm 1",
        "Feed-forward: gelu(h W_1 + b_1) W_2 + b_2",
        "Add & LayerNorm 2",
        "Output: hidden states",
        "x 3",
    ]
    boxes = [p for p in fig.axes[0].patches if isinstance(p, FancyBboxPatch)]
    assert len(boxes) == 8
    tops = [b.get_y() for b in boxes]
    assert tops == sorted(tops), "drawn top to bottom in computation order"
    panel = "\n".join(t.get_text() for t in fig.axes[1].texts)
    for row in [
        "d_model          32",
        "n_heads          4",
        "d_head           8",
        "d_ff             48",
        "n_layers         3",
        "activation       gelu",
        "positional       learned",
        "norm             post",
        "this trace: B = 1, S = 7",
    ]:
        assert row in panel  # fmt: skip
    residual = [line for line in fig.axes[0].get_lines()
                if to_rgba(line.get_color()) == to_rgba(RESIDUAL_COLOR)]  # fmt: skip
    assert len(residual) == 2, "two residual connections per block"


def test_pre_norm_config_alone_gives_symbolic_shapes_with_its_sizes():
    config = EncoderConfig(norm="pre", causal=True, d_model=24, n_heads=3, d_ff=40, n_layers=1)
    fig = architecture_diagram(config)
    assert titles(fig) == [
        "Token ids", "Embedding: W_E[token_ids] + sinusoidal positions", "Embedding output",
        "LayerNorm 1", "Multi-head self-attention (3 heads x d_head 8), causal", "Add (residual)",
        "LayerNorm 2", "Feed-forward: relu(h W_1 + b_1) W_2 + b_2", "Add (residual)",
        "Final LayerNorm", "Output: hidden states", "x 1"]  # fmt: skip
    shapes, _ = name_lines(fig)
    assert shapes["attn.weights"] == "(B, 3, S, S)"
    assert shapes["attn.mask"] == "(B, 1, S, S)", "the causal mask's shape"
    assert shapes["attn.q"] == "(B, 3, S, 8)"
    assert shapes["ffn.act"] == "(B, S, 40)"
    assert shapes["final_ln.out"] == "(B, S, 24)"
    assert "shapes from the config" in fig.axes[0].get_title()


def test_filtered_and_training_traces():
    _, trace = Encoder(BERT_LIKE, seed=0).run_with_trace([[1, 2, 3]], keep="*.attn.weights")
    shapes, _ = name_lines(architecture_diagram(trace))
    assert shapes["attn.weights"] == "(1, 4, 3, 3)"
    assert shapes["attn.q"] == "not recorded"
    config = EncoderConfig(dropout=0.1)
    _, trace = Encoder(config, seed=0).run_with_trace(
        [[1, 2, 3]], training=True, rng=np.random.default_rng(0)
    )
    shapes, _ = name_lines(architecture_diagram(trace))
    assert shapes["attn.weights_dropout_mask"] == "(1, 4, 3, 3)"
    assert shapes["embed.dropout_mask"] == "(1, 3, 32)"
    listed = [line.split()[0] for box in diagram_boxes(config) for line in box.lines]
    assert "embed.dropout_mask" not in listed, "a config alone lists no dropout masks"


def test_bad_input_is_named(trace):
    with pytest.raises(TypeError, match="source must be a Trace or an EncoderConfig, got dict"):
        architecture_diagram({"d_model": 4})
    with pytest.raises(IndexError, match=r"layer must be in \[0, 3\), got 3"):
        architecture_diagram(trace, layer=3)
    with pytest.raises(IndexError, match=r"layer must be in \[0, 2\), got -1"):
        architecture_diagram(EncoderConfig(), layer=-1)


@pytest.mark.parametrize(
    "config",
    [
        BERT_LIKE,
        EncoderConfig(norm="pre", causal=True, dropout=0.1),
        EncoderConfig(d_model=384, n_heads=12, d_ff=1536, n_layers=6, max_len=512),
    ],  # fmt: skip
    ids=["bert-like", "pre-norm-causal", "minilm-sized"],
)
def test_every_text_stays_inside_its_box(config):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig = architecture_diagram(config)
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    ax = fig.axes[0]
    boxes = [p for p in ax.patches if isinstance(p, FancyBboxPatch)]
    inside = 0
    for text in ax.texts:
        anchor = ax.transData.transform(text.get_position())
        owners = [b for b in boxes if b.get_window_extent(renderer).contains(*anchor)]
        if not owners or not text.get_text():
            continue  # the residual labels, the block frame's labels, the arrows
        box, extent = owners[0].get_window_extent(renderer), text.get_window_extent(renderer)
        assert box.x0 <= extent.x0 and extent.x1 <= box.x1, f"{text.get_text()!r} leaves its box"
        assert box.y0 <= extent.y0 and extent.y1 <= box.y1, f"{text.get_text()!r} leaves its box"
        inside += 1
    assert inside > 30, "titles, names and meanings were checked"
