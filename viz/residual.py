"""The residual stream: how large the token vectors are, and what each layer adds to them.

Every block reads the residual stream and adds to it: ``resid_mid = x + attn.out``, then
``resid_post = h + ffn.out`` (see :mod:`minitransformer.encoder`). Two figures, drawn from the
trace: :func:`residual_norms` (the length of every token's vector after the embedding and after
each block) and :func:`contribution_sizes` (per layer, how large the attention and feed-forward
outputs are next to the stream they are added to).
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib as mpl
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from minitransformer.trace import Trace
from viz.checks import (
    check_batch,
    require_names,
)
from viz.style import (
    LITERAL,
    MASKED_COLOR,
    NORMS_CMAP,
    figure_of,
    grey_padding_labels,
    head_color,
    label_positions,
    plural,
    real_positions,
    token_labels,
)


def stream_names(trace: Trace, inside_blocks: bool = False) -> list[str]:
    """The residual stream's checkpoints: ``embed.out``, each ``blocks.{l}.out`` (preceded by
    ``resid_mid`` and ``resid_post`` with ``inside_blocks``) and, for pre-norm stacks,
    ``final_ln.out``."""
    names = ["embed.out"]
    for l in range(trace.config.n_layers):
        inside = [f"blocks.{l}.resid_mid", f"blocks.{l}.resid_post"] if inside_blocks else []
        names += [*inside, f"blocks.{l}.out"]
    return names + (["final_ln.out"] if trace.config.norm == "pre" else [])


def residual_norms(
    trace: Trace,
    tokens: Sequence[str] | None = None,
    *,
    batch: int = 0,
    inside_blocks: bool = False,
) -> Figure:
    """Draw the L2 norm ``||x_i||`` of every token's vector at every checkpoint of the stream.

    Left: a heatmap, tokens down, checkpoints across (``embed.out``, ``blocks.0.out``, ...).
    Right: the same numbers as one thin line per token over the checkpoints, with their mean
    in bold. Padding tokens are not part of the sentence: their rows are grey (masked) and
    their labels too, and they set neither the colour scale, nor a line, nor the mean.
    Post-norm blocks end in a LayerNorm, so their outputs have similar norms (add
    ``inside_blocks=True`` to see the sums before the LayerNorms); pre-norm stacks let the
    stream grow until ``final_ln``.

    Parameters
    ----------
    trace : Trace
        Needs ``embed.out`` and every ``blocks.{l}.out`` (and ``final_ln.out`` if pre-norm).
    tokens : sequence of str, optional
        Token labels (length S).
    batch : int
        Which sequence of the batch.
    inside_blocks : bool
        Also show ``blocks.{l}.resid_mid`` (after adding attention) and ``resid_post`` (after
        adding the feed-forward output) of every block.

    Returns
    -------
    matplotlib Figure: the heatmap axes (its image holds the (S, checkpoints) norms), the line
    axes and a colour bar.
    """
    names = stream_names(trace, inside_blocks)
    require_names(trace, names, figure="the residual norms figure")
    batch = check_batch(trace, batch, names[0])
    norms = np.stack([np.linalg.norm(trace[n][batch], axis=-1) for n in names], axis=1)  # (S, C)
    S = norms.shape[0]
    labels = token_labels(tokens, S)
    real = real_positions(trace, batch)
    if not real.any():
        raise ValueError(f"batch row {batch} is padding only: it has no token to draw")

    height = float(np.clip(0.22 * S + 1.8, 3.6, 12.0))
    fig = Figure(figsize=(max(10.0, 0.45 * len(names) + 7.0), height), layout="constrained")
    ax_map, ax_lines = fig.subplots(1, 2, width_ratios=[1.0, 1.2])
    shown = np.ma.masked_array(norms, mask=np.broadcast_to(~real[:, None], norms.shape))
    cmap = mpl.colormaps[NORMS_CMAP].with_extremes(bad=MASKED_COLOR)  # padding rows: grey
    image = ax_map.imshow(shown, cmap=cmap, aspect="auto", interpolation="nearest")
    ticks = label_positions(S, max_labels=max(2, int((height - 1.8) * 72 / 12)))
    ax_map.set_yticks(ticks, [labels[t] for t in ticks], **LITERAL)
    grey_padding_labels(ax_map.get_yticklabels(), ticks, real)
    ax_map.set_xticks(range(len(names)), names, rotation=45, ha="right")
    ax_map.set(ylabel="token", title="Norm of each token's residual vector")
    fig.colorbar(image, ax=ax_map, shrink=0.6, aspect=30, pad=0.02).set_label("L2 norm")
    fig.get_layout_engine().set(wspace=0.08)  # type: ignore[union-attr, call-arg]

    steps = np.arange(len(names))
    for row in norms[real]:
        ax_lines.plot(steps, row, color="#9e9e9e", lw=0.8, alpha=0.7)
    ax_lines.plot(
        steps, norms[real].mean(axis=0), color="black", lw=2.5, marker="o", label="mean over tokens"
    )
    ax_lines.set_xticks(steps, names, rotation=45, ha="right")
    ax_lines.set(ylabel="L2 norm", title="One line per token")
    ax_lines.set_ylim(bottom=0)
    ax_lines.legend(loc="best", fontsize=8)
    padding = f", {plural(S - int(real.sum()), 'padding token')} left out" if not real.all() else ""
    fig.suptitle(
        f"Residual stream norms ({trace.config.norm}-norm, "
        f"{plural(trace.config.n_layers, 'layer')}, {plural(int(real.sum()), 'token')}"
        f"{padding})"
    )
    return fig


def contribution_sizes(trace: Trace, *, batch: int = 0, ax: Axes | None = None) -> Figure:
    """Per layer, the mean norm of what attention and the feed-forward layer add to the stream.

    Four bars per layer, each the mean L2 norm over the real (non-padding) tokens of:

    * the stream attention is added to (the block input ``resid_pre``);
    * the attention output ``attn.out``;
    * the stream the feed-forward output is added to (``ln1.out`` in a post-norm block,
      ``resid_mid`` in a pre-norm block);
    * the feed-forward output ``ffn.out``.

    Parameters
    ----------
    trace : Trace
        Needs those names for every layer (and knows its padding from its inputs).
    batch : int
        Which sequence of the batch.
    ax : matplotlib Axes, optional
        Where to draw; default: a new figure.

    Returns
    -------
    matplotlib Figure whose axes holds four bar containers, labelled as in the legend.
    """
    n_layers = trace.config.n_layers
    into_ffn = "resid_mid" if trace.config.norm == "pre" else "ln1.out"
    groups = {
        "residual into attention (resid_pre)": [f"blocks.{l}.resid_pre" for l in range(n_layers)],
        "attention output (attn.out)": [f"blocks.{l}.attn.out" for l in range(n_layers)],
        f"residual into FFN ({into_ffn})": [f"blocks.{l}.{into_ffn}" for l in range(n_layers)],
        "FFN output (ffn.out)": [f"blocks.{l}.ffn.out" for l in range(n_layers)],
    }
    needed = [n for names in groups.values() for n in names]
    require_names(trace, needed, figure="the contribution sizes figure")
    batch = check_batch(trace, batch, "blocks.0.resid_pre")
    real = real_positions(trace, batch)
    if not real.any():
        raise ValueError(f"batch row {batch} is padding only: no token to average over")

    if ax is None:
        # the legend takes about 3 inches right of the bars
        ax = Figure(
            figsize=(max(7.5, 1.4 * n_layers + 4.5), 4.2), layout="constrained"
        ).add_subplot()
    fig = figure_of(ax)
    colors = ["#bdbdbd", head_color(0), "#7f7f7f", head_color(1)]
    width = 0.2
    layers = np.arange(n_layers)
    for k, ((label, names), color) in enumerate(zip(groups.items(), colors, strict=True)):
        sizes = [np.linalg.norm(trace[n][batch][real], axis=-1).mean() for n in names]
        ax.bar(layers + (k - 1.5) * width, sizes, width, label=label, color=color)
    ax.set_xticks(layers, [f"layer {l}" for l in layers])
    ax.set_ylabel("mean L2 norm over tokens")
    ax.set_title(
        "What each layer adds to the residual stream\n"
        f"mean over {plural(int(real.sum()), 'real token')}"
    )
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return fig
