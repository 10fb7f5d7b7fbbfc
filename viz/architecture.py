"""The encoder as a diagram of boxes and arrows, each box listing the trace names it records.

A student sees where every array of a trace lives: the embedding, then N identical blocks
(multi-head attention, add & norm, feed-forward, add & norm -- or the pre-norm order), then the
output. Each box lists its trace names with their shapes, taken from a live trace
(``attn.weights (1, 12, 9, 9)``) or, from a config alone, written with the config's sizes
(``attn.weights (B, 12, S, S)``). A side panel lists the config.
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import FancyBboxPatch, Rectangle

from minitransformer.config import EncoderConfig
from minitransformer.trace import NAME_TABLE, Trace, expected_names, template_of
from viz.checks import (
    check_index,
)

#: Fill colours of the kinds of box.
BOX_COLORS = {
    "input": "#f2f2f2",
    "embed": "#fff2cc",
    "norm": "#e8e8e8",
    "attn": "#deebf7",
    "ffn": "#e5f5e0",
    "output": "#f2f2f2",
}
#: Colour of the residual (skip) connections.
RESIDUAL_COLOR = "#c44e52"
#: Vertical sizes, in text lines: a box's title, the gap (arrow) between boxes, box padding.
TITLE_LINES, GAP_LINES, PAD_LINES = 1.5, 1.7, 0.6
#: Height of one text line, in inches.
LINE_INCHES = 0.21
#: Horizontal extent of the boxes, in data units (the axes runs from 0 to 10).
BOX_LEFT, BOX_RIGHT = 1.6, 9.2

_SHAPES = {row.name: row.shape for row in NAME_TABLE}
_MEANINGS = {row.name: row.meaning for row in NAME_TABLE}
#: x of the meanings written after the ``name  shape`` lines, in data units.
MEANING_X = BOX_LEFT + 3.75
#: Longer meanings wrap onto further lines: the room between MEANING_X and the box's right
#: border (3.7 data units; the diagram axes is about 9.2 inches wide, so 0.92 inch per unit)
#: holds 3.7 * 0.92 * 72 / (0.6 * 7.5) ~ 54 characters of the 7.5-point meanings.
MEANING_CHARS = 54


@dataclass
class Box:
    """One box of the diagram: a title, its lines (``name  shape``) with what each name means,
    its kind (colour), and whether it belongs to the repeated block."""

    title: str
    kind: str
    in_block: bool = False
    lines: tuple[str, ...] = ()
    meanings: tuple[str, ...] = ()
    top: float = 0.0  # filled in by the layout
    bottom: float = 0.0

    @property
    def n_rows(self) -> int:
        """Text lines below the title: one per name, more where a meaning wraps."""
        return sum(len(meaning_lines(m)) for m in self.meanings)


def meaning_lines(meaning: str) -> list[str]:
    """A meaning broken into lines of at most :data:`MEANING_CHARS` characters."""
    return textwrap.wrap(meaning, MEANING_CHARS) or [""]


def _box_key(template: str, norm: str) -> str:
    """Which box a trace name belongs to (by its template, e.g. ``blocks.{l}.ln1.out``)."""
    part = template.removeprefix("blocks.{l}.")
    if template.startswith("embed.ln.") or template in ("embed.dropout_mask", "embed.out"):
        return "embed_tail"
    if template.startswith("embed."):
        return "embed"
    if template.startswith("final_ln."):
        return "final_ln"
    if part == "resid_pre":  # the block input, listed in the block's first box
        return "attn" if norm == "post" else "ln1"
    if part.startswith("attn."):
        return "attn"
    if part.startswith("ffn."):
        return "ffn"
    if norm == "post":
        return "add_norm1" if part == "resid_mid" or part.startswith("ln1.") else "add_norm2"
    if part.startswith("ln1."):
        return "ln1"
    if part.startswith("ln2."):
        return "ln2"
    return "add1" if part == "resid_mid" else "add2"


def _symbolic_shape(template: str, config: EncoderConfig) -> str:
    """The table's shape of a name, with the config's sizes put in (B and S stay letters)."""
    shape = _SHAPES[template]
    if " or " in shape:  # the mask: (B, 1, 1, S) or, when causal, (B, 1, S, S)
        shape = shape.split(" or ")[1 if config.causal else 0]
    sizes = {"D": config.d_model, "H": config.n_heads, "Dh": config.d_head, "F": config.d_ff}
    return re.sub(r"\b(Dh|D|H|F)\b", lambda m: str(sizes[m.group(1)]), shape)


def diagram_boxes(config: EncoderConfig, trace: Trace | None = None, layer: int = 0) -> list[Box]:
    """The boxes of the diagram, top to bottom, with their ``name  shape`` lines.

    Names are those a forward pass with ``config`` records (plus the dropout masks when the
    trace holds them); block names are shown without their ``blocks.{layer}.`` prefix.
    Shapes come from ``trace`` (``"not recorded"`` for names it lacks), else from the config.
    """
    training = trace is not None and any(n.endswith("dropout_mask") for n in trace)
    embedding = "Embedding: W_E[token_ids]"
    embedding += {
        "sinusoidal": " + sinusoidal positions",
        "learned": " + W_pos[positions]",
        "none": "",
    }[config.positional]
    embedding += " + W_type[token_type_ids]" if config.type_vocab_size else ""
    ffn = f"Feed-forward: {config.activation}(h W_1 + b_1) W_2 + b_2"
    attn = f"Multi-head self-attention ({config.n_heads} heads x d_head {config.d_head})"
    if config.causal:
        attn += ", causal"
    if config.norm == "post":
        block = [
            ("attn", attn, "attn"),
            ("add_norm1", "Add & LayerNorm 1", "norm"),
            ("ffn", ffn, "ffn"),
            ("add_norm2", "Add & LayerNorm 2", "norm"),
        ]
    else:
        block = [
            ("ln1", "LayerNorm 1", "norm"),
            ("attn", attn, "attn"),
            ("add1", "Add (residual)", "norm"),
            ("ln2", "LayerNorm 2", "norm"),
            ("ffn", ffn, "ffn"),
            ("add2", "Add (residual)", "norm"),
        ]
    tail = "Embedding LayerNorm" if config.embed_layer_norm else "Embedding output"
    specs = [("embed", embedding, "embed", False), ("embed_tail", tail, "embed", False)]
    specs += [(key, title, kind, True) for key, title, kind in block]
    if config.norm == "pre":
        specs.append(("final_ln", "Final LayerNorm", "norm", False))

    lines: dict[str, list[str]] = {key: [] for key, *_ in specs}
    meanings: dict[str, list[str]] = {key: [] for key, *_ in specs}
    names = expected_names(config, training)
    for name in names:
        template = template_of(name)
        if template.startswith("blocks.{l}.") and not name.startswith("blocks.0."):
            continue  # every block records the same names: list block `layer`'s once
        full = template.replace("{l}", str(layer))
        short = template.removeprefix("blocks.{l}.")
        if trace is None:
            shape = _symbolic_shape(template, config)
        else:
            shape = str(trace[full].shape) if full in trace else "not recorded"
        key = _box_key(template, config.norm)
        lines[key].append(f"{short:<25} {shape}")
        meanings[key].append(_MEANINGS[template])

    ids_shape = "(B, S)"
    if trace is not None and "embed.tokens" in trace:
        ids_shape = str(trace["embed.tokens"].shape[:2])
    last = "final_ln.out" if config.norm == "pre" else f"blocks.{config.n_layers - 1}.out"
    out_shape = "(B, S, " + str(config.d_model) + ")"
    if trace is not None:
        out_shape = str(trace[last].shape) if last in trace else "not recorded"
    boxes = [
        Box(
            "Token ids",
            "input",
            lines=(f"{'token_ids':<25} {ids_shape}",),
            meanings=("the input: one id per token",),
        )
    ]
    boxes += [
        Box(title, kind, in_block, tuple(lines[key]), tuple(meanings[key]))
        for key, title, kind, in_block in specs
    ]
    boxes.append(
        Box(
            "Output: hidden states",
            "output",
            lines=(f"{last:<25} {out_shape}",),
            meanings=("hidden, what the encoder returns",),
        )
    )
    return boxes


def architecture_diagram(source: Trace | EncoderConfig, *, layer: int = 0) -> Figure:
    """Draw the encoder as boxes and arrows, each box listing its trace names and their shapes.

    Parameters
    ----------
    source : Trace or EncoderConfig
        A trace gives live shapes (``attn.weights (1, 12, 9, 9)``); a config alone gives the
        shapes with its sizes and B (batch), S (sequence) as letters.
    layer : int
        Which block's names and shapes to list (all blocks record the same names).

    Returns
    -------
    matplotlib Figure with the diagram axes (boxes: ``FancyBboxPatch``; text per box: a bold
    title and one ``name  shape`` line per trace name) and the config panel axes.
    """
    if isinstance(source, Trace):
        config, trace = source.config, source
    elif isinstance(source, EncoderConfig):
        config, trace = source, None
    else:
        raise TypeError(f"source must be a Trace or an EncoderConfig, got {type(source).__name__}")
    layer = check_index(layer, config.n_layers, "layer")
    boxes = diagram_boxes(config, trace, layer)

    y = 0.0  # the layout runs downwards, in text lines
    for index, box in enumerate(boxes):
        if box.in_block and not boxes[index - 1].in_block:
            y += PAD_LINES * 2  # room for the block frame's label
        box.top = y
        box.bottom = y + TITLE_LINES + box.n_rows + PAD_LINES
        y = box.bottom + GAP_LINES
    total = y - GAP_LINES

    fig = Figure(figsize=(12.5, max(6.0, total * LINE_INCHES + 0.8)), layout="constrained")
    ax, ax_config = fig.subplots(1, 2, width_ratios=[3.0, 1.0])
    ax.set_xlim(0, 10)
    ax.set_ylim(total + 0.5, -0.5)
    ax.set_axis_off()
    for index, box in enumerate(boxes):
        _draw_box(ax, box)
        if index:
            ax.annotate(
                "",
                xy=((BOX_LEFT + BOX_RIGHT) / 2, box.top),
                xytext=((BOX_LEFT + BOX_RIGHT) / 2, boxes[index - 1].bottom),
                arrowprops={"arrowstyle": "-|>", "color": "black", "lw": 1.2},
            )
    _draw_block_frame(ax, [b for b in boxes if b.in_block], config)
    _draw_skips(ax, boxes, config)
    _draw_config_panel(ax_config, config, trace, layer)
    where = "shapes from this trace" if trace is not None else "shapes from the config"
    ax.set_title(
        f"Transformer encoder ({config.norm}-norm, {config.n_layers} layers): trace "
        f"names and {where}",
        fontsize=11,
    )
    return fig


def _draw_box(ax: Axes, box: Box) -> None:
    height = box.bottom - box.top
    frame = FancyBboxPatch(
        (BOX_LEFT, box.top),
        BOX_RIGHT - BOX_LEFT,
        height,
        boxstyle="round,pad=0,rounding_size=0.25",
        lw=1.0,
        facecolor=BOX_COLORS[box.kind],
        edgecolor="#404040",
    )
    ax.add_patch(frame)
    ax.text(BOX_LEFT + 0.15, box.top + 0.35, box.title, fontsize=9, fontweight="bold", va="top")
    y = box.top + TITLE_LINES + 0.5  # the middle of the first text line
    for line, meaning in zip(box.lines, box.meanings, strict=True):
        ax.text(BOX_LEFT + 0.35, y, line, fontsize=8, family="monospace", va="center")
        for part in meaning_lines(meaning):  # a long meaning continues on the next lines
            ax.text(MEANING_X, y, part, fontsize=7.5, color="#595959", va="center")
            y += 1


def _draw_block_frame(ax: Axes, block: list[Box], config: EncoderConfig) -> None:
    """A dashed frame around the repeated block, labelled with how often it repeats."""
    top, bottom = block[0].top - PAD_LINES * 1.6, block[-1].bottom + PAD_LINES
    ax.add_patch(
        Rectangle((0.25, top), 9.45, bottom - top, fill=False, ls="--", edgecolor="#7f7f7f", lw=1.2)
    )
    ax.text(
        9.6,
        top + 0.2,
        f"blocks.{{l}}.*  for l = 0 .. {config.n_layers - 1}",
        fontsize=8.5,
        family="monospace",
        va="top",
        ha="right",
        color="#404040",
    )
    ax.text(
        9.8,
        (top + bottom) / 2,
        f"x {config.n_layers}",
        fontsize=14,
        fontweight="bold",
        rotation=90,
        va="center",
        ha="left",
    )


def _draw_skips(ax: Axes, boxes: list[Box], config: EncoderConfig) -> None:
    """The residual connections: from the arrow into a sublayer, around it, into its Add box."""
    block = [b for b in boxes if b.in_block]
    if config.norm == "post":  # x around attention into Add & LN1, h around the FFN into Add & LN2
        pairs = [(block[0], block[1]), (block[2], block[3])]
    else:  # x around LN1 and attention into Add, resid_mid around LN2 and the FFN into Add
        pairs = [(block[0], block[2]), (block[3], block[5])]
    middle, lane = (BOX_LEFT + BOX_RIGHT) / 2, 0.85
    for skipped, add in pairs:
        y_from, y_to = skipped.top - 0.5, (add.top + add.bottom) / 2
        ax.plot([middle, lane, lane], [y_from, y_from, y_to], color=RESIDUAL_COLOR, lw=1.4)
        arrow = {"arrowstyle": "-|>", "color": RESIDUAL_COLOR, "lw": 1.4}
        ax.annotate("", xy=(BOX_LEFT, y_to), xytext=(lane, y_to), arrowprops=arrow)
        ax.text(
            lane - 0.12,
            (y_from + y_to) / 2,
            "residual",
            rotation=90,
            fontsize=7.5,
            color=RESIDUAL_COLOR,
            va="center",
            ha="right",
        )


def _draw_config_panel(ax: Axes, config: EncoderConfig, trace: Trace | None, layer: int) -> None:
    ax.set_axis_off()
    fields = [
        "d_model",
        "n_heads",
        "d_head",
        "d_ff",
        "n_layers",
        "activation",
        "positional",
        "norm",
        "vocab_size",
        "max_len",
        "embed_layer_norm",
        "type_vocab_size",
        "causal",
        "layer_norm_eps",
        "dropout",
        "dtype",
    ]
    rows = [f"{field:<17}{getattr(config, field)}" for field in fields]
    rows += [
        "",
        "Shapes:",
        "B  batch",
        "S  sequence length",
        f"D  d_model = {config.d_model}",
        f"H  heads = {config.n_heads}",
        f"Dh d_head = {config.d_head}",
        f"F  d_ff = {config.d_ff}",
    ]
    if trace is not None and "embed.tokens" in trace:
        B, S = np.shape(trace["embed.tokens"])[:2]
        rows += ["", f"this trace: B = {B}, S = {S}", f"block names listed for l = {layer}"]
    ax.text(0.0, 1.0, "Config", fontsize=11, fontweight="bold", va="top", transform=ax.transAxes)
    ax.text(
        0.0,
        0.97,
        "\n".join(rows),
        fontsize=8,
        family="monospace",
        va="top",
        transform=ax.transAxes,
        linespacing=1.5,
    )
