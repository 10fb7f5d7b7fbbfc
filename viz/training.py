"""Attention over training: one head's pattern at the snapshots recorded while the model learned.

:class:`minitransformer.training.AttentionSnapshots` runs the model on one fixed probe input every
few training steps and keeps every head's weights. At step 0 a head attends almost uniformly;
as the model learns the task, the head that does the work sharpens into the task's pattern
(reversal: an anti-diagonal). These figures show that happening:

- :func:`attention_over_training` draws a strip of heatmaps of the head, one per snapshot, each
  titled with its training step and -- given the task's target matrix -- the pattern score
  (the share of attention that lands where the exact algorithm reads);
- :func:`animate_attention` saves the same frames as a GIF (or MP4 where ffmpeg is installed),
  for a slide.

Every frame uses the colour scale 0 to 1, so a colour means the same weight at every step.

>>> snapshots = AttentionSnapshots(probe_ids, every=50)                 # doctest: +SKIP
>>> train(model, classifier, task, steps=600, callbacks=[snapshots])    # doctest: +SKIP
>>> attention_over_training(snapshots, layer=1, head=0, target=T)       # doctest: +SKIP
>>> animate_attention(snapshots, 1, 0, "reverse.gif")                   # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib import animation
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from minitransformer.tasks import pattern_score
from viz.checks import (
    check_index,
)
from viz.heatmap import draw_weights
from viz.style import (
    LITERAL,
    cell_size_inches,
    grey_padding_labels,
    label_positions,
    shown_mask,
    token_labels,
)

#: The strip shows at most this many snapshots when ``steps`` is not given (evenly spread,
#: always the first and the last).
MAX_FRAMES = 8


def snapshot_weights(
    snapshots: Any, layer: int, head: int
) -> tuple[list[int], np.ndarray, np.ndarray]:
    """The steps, the head's weights at each of them, and the probe's mask.

    Parameters
    ----------
    snapshots : AttentionSnapshots
        Or any object with ``steps`` (list of int) and ``weights`` of shape
        (n_snapshots, n_layers, n_heads, S, S), and optionally ``mask`` of shape (1, S).
    layer, head : int

    Returns
    -------
    steps : list of int, length n_snapshots
    weights : ndarray of shape (n_snapshots, S, S)
    mask : bool ndarray of shape (S, S)
        True where a weight is drawn: a real query and a key it may attend to (all True when
        the probe has no padding; a padding query's row is False, see
        :func:`viz.style.shown_mask`).
    """
    kind = type(snapshots).__name__
    if not hasattr(snapshots, "steps"):
        raise TypeError(f"snapshots must be an AttentionSnapshots (with .steps), got {kind}")
    steps = [int(s) for s in snapshots.steps]
    if not steps:
        raise ValueError(
            "snapshots holds no snapshot yet: pass it to train(..., callbacks=[snapshots]) first"
        )
    if not hasattr(snapshots, "weights"):
        raise TypeError(f"snapshots must be an AttentionSnapshots (with .weights), got {kind}")
    weights = np.asarray(snapshots.weights)
    if weights.ndim != 5 or weights.shape[0] != len(steps):
        raise ValueError(
            "snapshots.weights must have shape (n_snapshots, n_layers, n_heads, S, S) with "
            f"n_snapshots = {len(steps)}, got {weights.shape}"
        )
    layer = check_index(layer, weights.shape[1], "layer")
    head = check_index(head, weights.shape[2], "head")
    S = weights.shape[-1]
    probe_mask = getattr(snapshots, "mask", None)
    real = (
        np.ones(S, dtype=bool)
        if probe_mask is None
        else (np.asarray(probe_mask, dtype=bool).reshape(S))
    )
    mask = shown_mask(np.broadcast_to(real[None, :], (S, S)), real)
    return steps, weights[:, layer, head], mask


def choose_frames(recorded: list[int], steps: Sequence[int] | None) -> list[int]:
    """Indices into ``recorded`` of the steps to show.

    ``steps=None``: every snapshot, or :data:`MAX_FRAMES` of them evenly spread (the first and
    the last included). Otherwise each step must be one of ``recorded``.
    """
    if steps is None:
        if len(recorded) <= MAX_FRAMES:
            return list(range(len(recorded)))
        return sorted({int(round(i)) for i in np.linspace(0, len(recorded) - 1, MAX_FRAMES)})
    missing = [s for s in steps if s not in recorded]
    if missing:
        raise ValueError(f"steps {missing} were not recorded; the snapshots have steps {recorded}")
    if not list(steps):
        raise ValueError("steps is empty: give at least one recorded step, or None")
    return [recorded.index(s) for s in steps]


def _check_target(target: Any, S: int) -> np.ndarray | None:
    """The target matrix as (S, S) (a batch of one, (1, S, S), is accepted), or None."""
    if target is None:
        return None
    T = np.asarray(target, dtype=float)
    if T.ndim == 3 and T.shape[0] == 1:
        T = T[0]
    if T.shape != (S, S):
        raise ValueError(f"target must have shape ({S}, {S}) like the probe, got {T.shape}")
    return T


def _frame_title(step: int, weights: np.ndarray, target: np.ndarray | None) -> str:
    """``"step 300"``, and on a second line the pattern score when there is a target."""
    if target is None:
        return f"step {step}"
    return f"step {step}\nscore {pattern_score(weights, target):.2f}"


def attention_over_training(
    snapshots: Any,
    layer: int,
    head: int,
    tokens: Sequence[str] | None = None,
    steps: Sequence[int] | None = None,
    *,
    target: Any = None,
    max_columns: int = 8,
) -> Figure:
    """One head's attention on the probe input at several training steps, side by side.

    Parameters
    ----------
    snapshots : AttentionSnapshots
        Recorded during :func:`~minitransformer.training.train` (see :func:`snapshot_weights`
        for the duck-typed format).
    layer, head : int
        Which head (from 0).
    tokens : sequence of str, optional
        Labels of the S probe tokens; default positions 0 .. S-1.
    steps : sequence of int, optional
        Which recorded steps to show, in this order. Default: all snapshots, or 8 of them
        evenly spread from the first to the last.
    target : array of shape (S, S), optional
        The task's expected attention for the probe (``batch.attention_target[0]``); each
        panel's title then gives the pattern score
        (:func:`~minitransformer.tasks.pattern_score`, 1 = all attention where it should be).
    max_columns : int
        Panels per row; more wrap onto further rows.

    Returns
    -------
    matplotlib Figure with one axes per step (titled ``"step 300"`` or
    ``"step 300\\nscore 0.97"``) and one colour bar from 0 to 1.
    """
    recorded, weights, mask = snapshot_weights(snapshots, layer, head)
    S = weights.shape[-1]
    labels = token_labels(tokens, S)
    T = _check_target(target, S)
    frames = choose_frames(recorded, steps)
    if isinstance(max_columns, bool) or not isinstance(max_columns, int) or max_columns < 1:
        raise ValueError(f"max_columns must be a positive int, got {max_columns!r}")
    n_cols = min(len(frames), max_columns)
    n_rows = -(-len(frames) // n_cols)  # ceiling division
    side = float(np.clip(0.16 * S + 0.4, 1.6, 4.4))  # inches per heatmap
    title = 0.5 if T is None else 0.75  # a title line (two with the score) and the key labels
    fig = Figure(
        figsize=(n_cols * side + 1.4, n_rows * (side + title + 0.1) + 0.3),
        layout="compressed",
    )
    ticks = label_positions(S, max_labels=int(6 * side))  # about one label per 12 points
    axes = fig.subplots(n_rows, n_cols, squeeze=False)
    for index, frame in enumerate(frames):
        ax = axes.flat[index]
        image = draw_weights(ax, weights[frame], mask, labels, vmax=1.0, annotate=False)
        ax.set_xticks(ticks, [labels[t] for t in ticks], rotation=90, **LITERAL)
        ax.set_yticks(ticks, [labels[t] for t in ticks], **LITERAL)
        for texts in (ax.get_xticklabels(), ax.get_yticklabels()):
            grey_padding_labels(texts, ticks, mask.any(axis=1))  # a padding query sees nothing
        ax.set_title(_frame_title(recorded[frame], weights[frame], T))
        ax.set_xlabel("key")
        if index % n_cols:
            ax.tick_params(labelleft=False)
        else:
            ax.set_ylabel("query")
    for ax in axes.flat[len(frames) :]:
        ax.set_visible(False)
    fig.colorbar(image, ax=axes, shrink=0.8).set_label("attention weight")
    fig.suptitle(f"Layer {layer}, head {head}: attention during training")
    return fig


def animate_attention(
    snapshots: Any,
    layer: int,
    head: int,
    path: str | PathLike[str],
    *,
    tokens: Sequence[str] | None = None,
    target: Any = None,
    fps: int = 2,
    dpi: int = 100,
) -> Path:
    """Save one head's attention at every snapshot as an animation: one frame per snapshot.

    Parameters
    ----------
    snapshots : AttentionSnapshots
    layer, head : int
    path : str or path-like
        ``*.gif`` (written with Pillow, which comes with matplotlib) or ``*.mp4`` (needs
        ffmpeg). When the writer for the suffix is not available, the frame strip of
        :func:`attention_over_training` (all snapshots) is saved instead, as ``path`` with
        the suffix ``.png``.
    tokens : sequence of str, optional
    target : array of shape (S, S), optional
        Adds the pattern score to each frame's title.
    fps : int
        Frames (snapshots) per second.
    dpi : int
        Resolution of the frames.

    Returns
    -------
    pathlib.Path
        The file written: ``path``, or the ``.png`` strip when falling back.
    """
    path = Path(path)
    writers = {".gif": "pillow", ".mp4": "ffmpeg"}
    if path.suffix.lower() not in writers:
        raise ValueError(f"path must end in .gif or .mp4, got {str(path)!r}")
    if not fps > 0:
        raise ValueError(f"fps must be a positive int, got {fps!r}")
    recorded, weights, mask = snapshot_weights(snapshots, layer, head)
    S = weights.shape[-1]
    labels = token_labels(tokens, S)
    T = _check_target(target, S)
    writer_name = writers[path.suffix.lower()]
    if not animation.writers.is_available(writer_name):
        strip = attention_over_training(snapshots, layer, head, tokens, recorded, target=T)
        fallback = path.with_suffix(".png")
        strip.savefig(fallback, dpi=dpi)
        return fallback

    size = cell_size_inches(S)
    fig = Figure(figsize=(size + 1.2, size + 0.3), layout="constrained")
    ax: Axes = fig.add_subplot()
    image = draw_weights(
        ax, weights[0], mask, labels, vmax=1.0, annotate=False, real=np.asarray(mask.any(axis=1))
    )
    ax.set_xlabel("key (attended to)")
    ax.set_ylabel("query (attending)")
    fig.colorbar(image, ax=ax, shrink=0.8).set_label("attention weight")
    fig.suptitle(f"Layer {layer}, head {head}: attention during training")
    writer = animation.writers[writer_name](fps=fps)
    with writer.saving(fig, str(path), dpi=dpi):
        for step, weights_then in zip(recorded, weights, strict=True):
            image.set_data(np.ma.masked_array(weights_then, mask=~mask))  # masked as the strip
            ax.set_title(_frame_title(step, weights_then, T))
            writer.grab_frame()
    return path
