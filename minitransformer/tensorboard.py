"""Log training to TensorBoard: loss, accuracy and learning rate as curves, attention as images.

:class:`TensorBoardLogger` is a :class:`~minitransformer.training.Callback`: pass it to
:func:`~minitransformer.training.train` and it writes, through the ``tensorboardX`` library,

* scalars every ``scalar_every`` steps: ``loss/train``, ``accuracy/train``, ``optimizer/lr``,
  ``optimizer/grad_norm``, and ``loss/validation``, ``accuracy/validation`` whenever the loop
  evaluates held-out data (TensorBoard draws train and validation in one chart per prefix);
* images every ``image_every`` steps (and at the first and last): for each layer, the
  attention of every head on a fixed probe input, side by side (:func:`attention_image`).
  The image slider in TensorBoard then replays the heads forming.

Then run ``tensorboard --logdir runs`` (``pip install tensorboard``) and open the address it
prints. :func:`read_scalars` and :func:`read_images` read the event files back without it.

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
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np

from minitransformer.encoder import Encoder
from minitransformer.heads import Classifier
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


class TensorBoardLogger(Callback):
    """A training callback that writes curves and attention images for TensorBoard.

    Parameters
    ----------
    logdir : str or path
        Directory of the run; each call of :func:`~minitransformer.training.train` writes a new
        event file there. Give each run its own directory (``runs/2-heads``, ...) to compare
        runs in TensorBoard.
    probe_ids : int array of shape (S,) or (1, S), optional
        One input whose attention is drawn every ``image_every`` steps. None: no images.
    probe_mask : bool array of the same shape, optional
        Its padding mask.
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
        scalar_every: int = 1,
        image_every: int = 50,
        cell: int = 16,
        gap: int = 4,
    ):
        for name, value in (("scalar_every", scalar_every), ("image_every", image_every)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        self.logdir = Path(logdir)
        self.probe_ids = None if probe_ids is None else np.asarray(probe_ids).reshape(1, -1)
        self.probe_mask = None if probe_mask is None else np.asarray(probe_mask).reshape(1, -1)
        if self.probe_mask is not None and self.probe_ids is None:
            raise ValueError("probe_mask needs probe_ids")
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
        _, trace = model.run_with_trace(self.probe_ids, self.probe_mask, keep="*.attn.weights")
        for l in range(trace.n_layers):
            image = attention_image(trace[f"blocks.{l}.attn.weights"][0], self.cell, self.gap)
            self._writer.add_image(f"attention/layer_{l}", image, step, dataformats="HWC")
        self._last_image_step = step


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
