"""Log training to TensorBoard: loss, accuracy and learning rate as curves, attention as images.

:class:`TensorBoardLogger` is a :class:`~minitransformer.training.Callback`: pass it to
:func:`~minitransformer.training.train` and it writes, through the ``tensorboardX`` library,

* scalars every ``scalar_every`` steps: ``loss/train``, ``accuracy/train``, ``optimizer/lr``,
  ``optimizer/grad_norm``, and ``loss/validation``, ``accuracy/validation`` whenever the loop
  evaluates held-out data (TensorBoard draws train and validation in one chart per prefix);
* images every ``image_every`` steps (and at the first and last): for each layer, the
  attention of every head on a fixed probe input, side by side -- once as exact grey pixels
  (``attention/layer_{l}``, :func:`attention_image`) and once drawn with the probe's tokens
  on the axes (``attention/layer_{l}/tokens``, :func:`labelled_attention_image`). The image
  slider in TensorBoard then replays the heads forming;
* at the end, given ``projector_heads``, the queries and keys of those heads on the probe in
  TensorBoard's embedding *projector* (:func:`write_query_key_projector`): AttentionViz's
  view of one head, each point labelled with its token, kind (query or key) and position.

Then run ``tensorboard --logdir runs`` (``pip install tensorboard``) and open the address it
prints. :func:`read_scalars`, :func:`read_images` and :func:`read_projector` read what was
written back without it.

``tensorboardX`` is an optional extra, imported when a logger is made::

    pip install "minitransformer[tensorboard]"    # or: pip install tensorboardX

>>> probe = task.generate(1).token_ids  # doctest: +SKIP
>>> logger = TensorBoardLogger("runs/reverse", probe_ids=probe)  # doctest: +SKIP
>>> train(model, classifier, task, steps=600, callbacks=[logger])  # doctest: +SKIP
"""

from __future__ import annotations

import itertools
import os
import struct
import unicodedata
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np

from minitransformer.encoder import Encoder
from minitransformer.heads import Classifier
from minitransformer.interpret.qk_space import normalize_qk
from minitransformer.tokenizer import BatchEncoding
from minitransformer.trace import Trace
from minitransformer.training import Callback, History

INSTALL_HINT = (
    "TensorBoard logging needs the tensorboardX package: "
    "pip install tensorboardX  (or pip install 'minitransformer[tensorboard]')"
)

#: Colour (RGB) of the columns that separate heads in an attention image.
SEPARATOR_RGB = (70, 130, 180)

#: Seconds between writes of the event file to disk, so TensorBoard shows a running training.
FLUSH_SECONDS = 10

_WRITERS = itertools.count()  # numbers the event files this process opens


def _tensorboardX() -> Any:
    """The ``tensorboardX`` module, or an ImportError that says how to install it."""
    try:
        import tensorboardX
    except ImportError as error:
        raise ImportError(INSTALL_HINT) from error
    return tensorboardX


def attention_image(weights: Any, cell: int = 16, gap: int = 4) -> np.ndarray:
    """One layer's heads as one RGB image: head 0 on the left, each (S, S) pattern in grey.

    A weight ``w`` becomes the grey level ``round(255 * w)`` (black 0, white 1); row i is
    query i, column j key j, as in :func:`viz.attention_heatmap`. Each weight fills a
    ``cell`` x ``cell`` square of pixels (TensorBoard would blur an 8 x 8 image), and heads are
    separated by ``gap`` columns of :data:`SEPARATOR_RGB`.

    Parameters
    ----------
    weights : ndarray of shape (n_heads, S, S)
        Attention weights in [0, 1], e.g. ``trace["blocks.0.attn.weights"][0]``.
    cell, gap : int
        Pixels per weight, and pixels between heads.

    Returns
    -------
    uint8 ndarray of shape (S * cell, n_heads * S * cell + (n_heads - 1) * gap, 3)
    """
    weights = np.asarray(weights, dtype=float)
    if weights.ndim != 3 or weights.shape[1] != weights.shape[2]:
        raise ValueError(f"weights must have shape (n_heads, S, S), got {weights.shape}")
    if not isinstance(cell, int) or cell < 1:
        raise ValueError(f"cell must be a positive int (pixels per weight), got {cell!r}")
    if not isinstance(gap, int) or gap < 0:
        raise ValueError(f"gap must be an int >= 0 (pixels between heads), got {gap!r}")
    if not np.isfinite(weights).all() or weights.min() < 0 or weights.max() > 1:
        raise ValueError("weights must be attention weights: finite numbers in [0, 1]")
    n_heads, S, _ = weights.shape
    grey = np.round(255 * weights).astype(np.uint8)  # (H, S, S)
    grey = grey.repeat(cell, axis=1).repeat(cell, axis=2)  # (H, S*cell, S*cell)
    separator = np.empty((S * cell, gap, 3), dtype=np.uint8)
    separator[...] = SEPARATOR_RGB
    panels = []
    for h in range(n_heads):
        if h > 0:
            panels.append(separator)
        panels.append(np.repeat(grey[h][:, :, None], 3, axis=2))  # grey as (R, G, B)
    return np.concatenate(panels, axis=1)


#: :func:`labelled_attention_image` draws at most this many heads side by side.
HEADS_PER_ROW = 4


def _literal(token: str) -> str:
    """A token as text that can be drawn on one line: lone surrogates and control characters
    (tab, line break, ...) written as their escapes (``"\\udc80"``, ``"\\t"``)."""
    text = str(token).encode("utf-8", "backslashreplace").decode("utf-8")
    return "".join(
        c.encode("unicode_escape").decode("ascii") if unicodedata.category(c) == "Cc" else c
        for c in text
    )


def labelled_attention_image(
    weights: Any, tokens: Any = None, *, dpi: int = 100, max_labels: int = 32
) -> np.ndarray:
    """One layer's heads drawn as heatmaps with the tokens on their axes, as an RGB image.

    The same numbers as :func:`attention_image` (row i = query, column j = key, one shared
    colour scale from 0 to 1, white 0 and dark blue 1), drawn by matplotlib, at most
    :data:`HEADS_PER_ROW` heads to a row, with each head's number above its map and the
    tokens as tick labels (literally: ``$`` is not mathtext; control characters escaped) --
    every k-th token past ``max_labels``.

    Parameters
    ----------
    weights : ndarray of shape (n_heads, S, S)
        Attention weights in [0, 1].
    tokens : list of S str, optional
        Default: the positions ``"0", "1", ...``.
    dpi : int
    max_labels : int

    Returns
    -------
    uint8 ndarray of shape (height, width, 3)
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # matplotlib: only when drawn
    from matplotlib.figure import Figure

    attention_image(weights)  # the same checks of shape and values
    weights = np.asarray(weights, dtype=float)
    n_heads, S, _ = weights.shape
    labels = [str(i) for i in range(S)] if tokens is None else [_literal(t) for t in tokens]
    if len(labels) != S:
        raise ValueError(f"tokens has {len(labels)} entries but the weights have {S} positions")
    shown = np.arange(0, S, max(1, int(np.ceil(S / max_labels))))
    panel = float(np.clip(0.22 * len(shown) + 1.2, 2.5, 6.0))
    margin = min(max(len(labels[t]) for t in shown) * 0.075, 1.2)  # rotated tokens, 9 pt
    n_cols = min(n_heads, HEADS_PER_ROW)
    n_rows = -(-n_heads // n_cols)
    fig = Figure(
        figsize=(n_cols * (panel + margin) + 0.9, n_rows * (panel + margin + 0.5)),
        dpi=dpi,
        layout="constrained",
    )
    axes = fig.subplots(n_rows, n_cols, squeeze=False).ravel()
    for ax in axes[n_heads:]:
        ax.set_visible(False)
    axes = axes[:n_heads]
    for h, ax in enumerate(axes):
        image = ax.imshow(weights[h], cmap="Blues", vmin=0.0, vmax=1.0)
        ax.set_title(f"head {h}", fontsize=10)
        ax.set_xticks(shown, [labels[t] for t in shown], rotation=90, fontsize=9, parse_math=False)
        ax.set_yticks(shown, [labels[t] for t in shown], fontsize=9, parse_math=False)
    fig.colorbar(image, ax=list(axes), shrink=0.8).set_label("attention weight")
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[:, :, :3].copy()


def _tsv_cell(text: Any) -> str:
    """A metadata cell: tabs, line breaks and backslashes escaped, so one point stays one line
    of the TSV file TensorBoard reads (and lone surrogates written as escapes)."""
    text = str(text).encode("utf-8", "backslashreplace").decode("utf-8")
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


#: The metadata columns of every point written by :func:`write_query_key_projector`.
PROJECTOR_COLUMNS = ("label", "token", "kind", "position", "sequence")


def query_key_points(
    trace: Trace, layer: int, head: int, tokens: Any = None
) -> tuple[np.ndarray, list[tuple[str, str, str, int, int]]]:
    """One head's queries and keys of every real token, normalised as AttentionViz does.

    Following Yeh et al. (2023, AttentionViz), over the real tokens of the whole batch:
    the keys are moved onto the queries' centroid, ``k <- k - mean(k) + mean(q)`` (adds the
    same number to every score of a query: its attention is unchanged), then
    ``c = sqrt(mean ||q|| / mean ||k||)``, ``q <- q / c`` and ``k <- k c`` (every ``q . k``
    unchanged), so both clouds have the same mean norm
    (:func:`minitransformer.interpret.qk_space.normalize_qk`, which ``viz.qk_space`` draws too).

    Parameters
    ----------
    trace : Trace
        With ``blocks.{layer}.attn.q`` and ``.k``.
    layer, head : int
    tokens : list of str, or list of lists of str (one per sequence), optional

    Returns
    -------
    points : ndarray of shape (2 N, d_head)
        The N real queries, then the N real keys (sequence by sequence, position by
        position).
    metadata : list of 2 N rows (label, token, kind, position, sequence)
        ``label`` is ``"q it"`` / ``"k it"``.
    """
    if not isinstance(trace, Trace):
        raise TypeError(f"trace must be a Trace, got {type(trace).__name__}")
    L, H = trace.config.n_layers, trace.config.n_heads
    for name, value, n in (("layer", layer, L), ("head", head, H)):
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, np.integer))
            or not 0 <= value < n
        ):
            raise ValueError(f"{name} must be an int in [0, {n}), got {value!r}")
    names = [f"blocks.{layer}.attn.q", f"blocks.{layer}.attn.k"]
    missing = [n for n in names if n not in trace]
    if missing:
        raise KeyError(f"the trace did not record {missing[0]!r}: keep '*.attn.q', '*.attn.k'")
    q = trace[names[0]][:, head].astype(np.float64)  # (B, S, Dh)
    k = trace[names[1]][:, head].astype(np.float64)
    B, S = q.shape[0], q.shape[1]
    if tokens is None:
        rows = [[str(i) for i in range(S)] for _ in range(B)]
    elif len(tokens) and not isinstance(tokens[0], str):
        rows = [list(t) for t in tokens]
    else:
        rows = [list(tokens)]
    if len(rows) != B or any(len(r) != S for r in rows):
        raise ValueError(f"tokens must give {S} tokens for each of the {B} sequences of the trace")
    real = np.array([trace.real_tokens(b) for b in range(B)])  # (B, S) bool
    b_index, s_index = np.nonzero(real)  # the real tokens, in order
    q, k = q[b_index, s_index], k[b_index, s_index]  # (N, Dh) each
    points = np.vstack(normalize_qk(q, k))  # (2 N, Dh)
    metadata = [
        (f"{kind[0]} {rows[b][s]}", rows[b][s], kind, int(s), int(b))
        for kind in ("query", "key")
        for b, s in zip(b_index, s_index, strict=True)
    ]
    return points, metadata


def write_query_key_projector(
    logdir: str | PathLike[str],
    trace: Trace,
    heads: Any,
    tokens: Any = None,
    *,
    step: int = 0,
) -> list[str]:
    """Write the queries and keys of some heads to TensorBoard's embedding projector.

    For each ``(layer, head)``, the points of :func:`query_key_points` become one embedding
    named ``qk/layer_{l}_head_{h}``, with :data:`PROJECTOR_COLUMNS` as metadata: in the
    *Projector* tab choose the embedding, "Label by" ``label`` and "Color by" ``kind`` (or
    ``sequence``), and PCA shows AttentionViz's joint query-key space; hovering a point names
    its token.

    Parameters
    ----------
    logdir : str or path
        The run directory (a ``projector_config.pbtxt`` there lists the embeddings).
    trace : Trace
    heads : list of (layer, head)
    tokens : list of str, or one list per sequence, optional
    step : int
        Embeddings of several steps can sit side by side.

    Returns
    -------
    list of str: the embedding names written.
    """
    if isinstance(heads, tuple) and len(heads) == 2 and np.ndim(heads[0]) == 0:
        raise TypeError(f"heads must be a list of (layer, head) pairs, e.g. [{heads}]")
    if isinstance(step, bool) or not isinstance(step, (int, np.integer)) or step < 0:
        raise ValueError(f"step must be an int >= 0, got {step!r}")
    prepared = [(l, h, *query_key_points(trace, l, h, tokens)) for l, h in heads]
    if not prepared:
        raise ValueError("heads is empty: give at least one (layer, head)")
    writer = _tensorboardX().SummaryWriter(str(logdir), filename_suffix=".projector")
    written = []
    try:
        for l, h, points, metadata in prepared:
            tag = f"qk/layer_{l}_head_{h}"
            cells = [[_tsv_cell(v) for v in row] for row in metadata]
            writer.add_embedding(
                points,
                metadata=cells,
                global_step=int(step),
                tag=tag,
                metadata_header=list(PROJECTOR_COLUMNS),
            )
            written.append(tag)
    finally:
        writer.close()
    return written


class TensorBoardLogger(Callback):
    """A training callback that writes curves and attention images for TensorBoard.

    Parameters
    ----------
    logdir : str or path
        Directory of the run; each call of :func:`~minitransformer.training.train` writes a new
        event file there. Give each run its own directory (``runs/2-heads``, ...) to compare
        runs in TensorBoard.
    probe_ids : int array of shape (S,) or (1, S), or a BatchEncoding of one text, optional
        One input whose attention is drawn every ``image_every`` steps. None: no images. A
        BatchEncoding brings its mask, token types and tokens.
    probe_mask : bool array of the same shape, optional
        Its padding mask.
    probe_tokens : list of S str, optional
        The probe's tokens, written on the axes of the labelled images and as the metadata of
        the projector's points (default: the positions; a BatchEncoding brings its own).
    projector_heads : list of (layer, head), optional
        At the end of training, write these heads' queries and keys on the probe to the
        embedding projector (:func:`write_query_key_projector`).
    scalar_every : int
        Write the training scalars every this many steps (validation scalars are written
        whenever the loop evaluates).
    image_every : int
        Write the attention images at step 0, every this many steps, and at the last step.
    cell, gap : int
        Image layout, see :func:`attention_image`.

    Attributes
    ----------
    logdir : Path
    """

    def __init__(
        self,
        logdir: str | PathLike[str],
        probe_ids: Any = None,
        probe_mask: Any = None,
        *,
        probe_tokens: Any = None,
        projector_heads: Any = None,
        scalar_every: int = 1,
        image_every: int = 50,
        cell: int = 16,
        gap: int = 4,
    ):
        for name, value in (("scalar_every", scalar_every), ("image_every", image_every)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        self.logdir = Path(logdir)
        self.probe_types = None
        if isinstance(probe_ids, BatchEncoding):
            if len(probe_ids) != 1 or probe_mask is not None or probe_tokens is not None:
                raise ValueError(
                    "probe_ids as a BatchEncoding must hold one text and come alone (it brings "
                    f"its mask and tokens), got {len(probe_ids)} texts"
                )
            probe_mask, probe_tokens = probe_ids.attention_mask, probe_ids.tokens[0]
            self.probe_types = probe_ids.token_type_ids
            probe_ids = probe_ids.input_ids
        self.probe_ids = None if probe_ids is None else np.asarray(probe_ids).reshape(1, -1)
        self.probe_mask = None if probe_mask is None else np.asarray(probe_mask).reshape(1, -1)
        if self.probe_ids is None and (
            probe_mask is not None or probe_tokens is not None or projector_heads is not None
        ):
            raise ValueError("probe_mask, probe_tokens and projector_heads need probe_ids")
        self.probe_tokens = None if probe_tokens is None else [str(t) for t in probe_tokens]
        if self.probe_tokens is not None and self.probe_ids is not None:
            if len(self.probe_tokens) != self.probe_ids.shape[1]:
                raise ValueError(
                    f"probe_tokens has {len(self.probe_tokens)} entries but probe_ids has "
                    f"{self.probe_ids.shape[1]} positions"
                )
        self.projector_heads = None if projector_heads is None else list(projector_heads)
        self.scalar_every, self.image_every = scalar_every, image_every
        self.cell, self.gap = cell, gap
        self._writer: Any = None
        self._last_image_step: int | None = None
        _tensorboardX()  # fail now, with the install hint, rather than after the first step

    def on_step(self, step: int, model: Encoder, classifier: Classifier, history: History) -> None:
        writer = self._open()
        if step > 0 and step % self.scalar_every == 0:
            writer.add_scalar("loss/train", history.train_loss[-1], step)
            writer.add_scalar("accuracy/train", history.train_acc[-1], step)
            writer.add_scalar("optimizer/lr", history.lr[-1], step)
            writer.add_scalar("optimizer/grad_norm", history.grad_norm[-1], step)
        if history.val_steps and history.val_steps[-1] == step:
            writer.add_scalar("loss/validation", history.val_loss[-1], step)
            writer.add_scalar("accuracy/validation", history.val_acc[-1], step)
        if step % self.image_every == 0:
            self._write_attention(step, model)

    def on_end(self, step: int, model: Encoder, classifier: Classifier, history: History) -> None:
        writer = self._open()
        if self._last_image_step != step:
            self._write_attention(step, model)
        writer.close()  # flushes; the next train() with this logger opens a new event file
        self._writer = None
        if self.projector_heads:
            _, trace = self._probe_trace(model, ["*.attn.q", "*.attn.k"])
            write_query_key_projector(
                self.logdir, trace, self.projector_heads, self.probe_tokens, step=step
            )

    def _open(self) -> Any:
        if self._writer is None:
            # event files are named by the second they were opened in: add the process and a
            # count, so that two runs started within one second do not write the same file
            suffix = f".{os.getpid()}.{next(_WRITERS)}"
            self._writer = _tensorboardX().SummaryWriter(
                str(self.logdir), flush_secs=FLUSH_SECONDS, filename_suffix=suffix
            )
            self._last_image_step = None
        return self._writer

    def _write_attention(self, step: int, model: Encoder) -> None:
        if self.probe_ids is None:
            return
        _, trace = self._probe_trace(model, "*.attn.weights")
        real = trace.real_tokens(0)
        tokens = self.probe_tokens or [str(i) for i in range(len(real))]
        for l in range(trace.n_layers):
            weights = trace[f"blocks.{l}.attn.weights"][0]  # (H, S, S)
            image = attention_image(weights, self.cell, self.gap)
            self._writer.add_image(f"attention/layer_{l}", image, step, dataformats="HWC")
            labelled = labelled_attention_image(  # the real tokens only, labelled
                weights[:, real][:, :, real], [t for t, r in zip(tokens, real, strict=True) if r]
            )
            self._writer.add_image(f"attention/layer_{l}/tokens", labelled, step, dataformats="HWC")
        self._last_image_step = step

    def _probe_trace(self, model: Encoder, keep: str | list[str]) -> tuple[np.ndarray, Trace]:
        return model.run_with_trace(
            self.probe_ids, self.probe_mask, token_type_ids=self.probe_types, keep=keep
        )


# ---------------------------------------------------------------------- reading back


def _events(logdir: str | PathLike[str]) -> list[Any]:
    """Every event in the event files of ``logdir``, the oldest file (first event) first.

    An event file is a sequence of records: an 8-byte little-endian length, a 4-byte checksum
    of the length, the serialised ``Event`` protocol buffer, a 4-byte checksum of it.
    """
    Event = _tensorboardX().proto.event_pb2.Event
    paths = sorted(Path(logdir).glob("events.out.tfevents.*"))
    if not paths:
        raise FileNotFoundError(f"no TensorBoard event files in {logdir}")
    files = []
    for path in paths:
        events, data, position = [], path.read_bytes(), 0
        while position < len(data):
            (length,) = struct.unpack("<Q", data[position : position + 8])
            start = position + 12  # after the length and its checksum
            events.append(Event.FromString(data[start : start + length]))
            position = start + length + 4  # after the record and its checksum
        if events:
            files.append(events)
    files.sort(key=lambda events: events[0].wall_time)
    return [event for events in files for event in events]


def read_scalars(logdir: str | PathLike[str]) -> dict[str, list[tuple[int, float]]]:
    """The scalars written to ``logdir``: tag -> list of (step, value), in writing order."""
    scalars: dict[str, list[tuple[int, float]]] = {}
    for event in _events(logdir):
        for value in event.summary.value:
            if value.HasField("simple_value"):
                scalars.setdefault(value.tag, []).append((event.step, value.simple_value))
    return scalars


def read_images(logdir: str | PathLike[str]) -> dict[str, list[tuple[int, bytes]]]:
    """The images written to ``logdir``: tag -> list of (step, PNG bytes), in writing order.

    Show one in a notebook with ``IPython.display.Image(png)``.
    """
    images: dict[str, list[tuple[int, bytes]]] = {}
    for event in _events(logdir):
        for value in event.summary.value:
            if value.HasField("image"):
                images.setdefault(value.tag, []).append(
                    (event.step, value.image.encoded_image_string)
                )
    return images


Embedding = tuple[np.ndarray, list[dict[str, str]]]  # the vectors and one metadata row each


def read_projector(logdir: str | PathLike[str]) -> dict[str, Embedding]:
    """The embeddings written to ``logdir``'s projector: name -> (vectors, metadata rows).

    Reads ``projector_config.pbtxt`` (one ``embeddings { tensor_name ... tensor_path ...
    metadata_path ... }`` block per embedding, as TensorBoard does), each ``tensors.tsv`` (one
    point a line, tab-separated numbers) and ``metadata.tsv`` (a header line, then one row a
    point; escaped tabs and line breaks are turned back).

    Returns
    -------
    dict ``"qk/layer_0_head_1:00000" -> (ndarray of shape (n, d), list of n dicts column ->
    value)``.
    """
    config = Path(logdir) / "projector_config.pbtxt"
    if not config.is_file():
        raise FileNotFoundError(f"no projector_config.pbtxt in {logdir}")
    embeddings: dict[str, Embedding] = {}
    for block in config.read_text(encoding="utf-8").split("embeddings {")[1:]:
        fields = dict(
            (key.strip(), value.strip().strip('"'))
            for key, _, value in (line.partition(":") for line in block.splitlines())
            if value
        )
        rows = (Path(logdir) / fields["tensor_path"]).read_text().splitlines()
        vectors = np.array([[float(v) for v in row.split("\t")] for row in rows])
        metadata: list[dict[str, str]] = []
        if "metadata_path" in fields:
            lines = (Path(logdir) / fields["metadata_path"]).read_text("utf-8").splitlines()
            header = lines[0].split("\t")
            metadata = [
                dict(zip(header, (_untsv(c) for c in line.split("\t")), strict=True))
                for line in lines[1:]
            ]
        embeddings[fields["tensor_name"]] = (vectors, metadata)
    return embeddings


def _untsv(cell: str) -> str:
    """The inverse of :func:`_tsv_cell`: a backslash and the letter after it become the tab,
    line break or carriage return they stand for (a doubled backslash, one backslash)."""
    out, i = [], 0
    while i < len(cell):
        if cell[i] == "\\" and i + 1 < len(cell):
            out.append({"t": "\t", "n": "\n", "r": "\r"}.get(cell[i + 1], cell[i + 1]))
            i += 2
        else:
            out.append(cell[i])
            i += 1
    return "".join(out)
