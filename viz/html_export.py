"""The attention of a trace as one self-contained HTML page: open it in any browser, offline.

``to_html`` writes a single file with its script and style inline. It loads nothing from the
network (no CDN, no web fonts; a Content-Security-Policy forbids it) and needs no Python
kernel: the weights travel inside the page. In the page:

- layer and head selectors, and a heatmap of the selected head (queries down, keys across);
- hover a query token (or a heatmap row) to frame its row, list its weights and keep only its
  lines in the head view; click to keep that focus;
- the head view (BertViz): query and key columns joined by lines as opaque as the weights,
  several heads in their colours (:func:`viz.style.head_color`), toggled by clicking them;
- the model view: a layers x heads grid of thumbnails; click one to select that head.

How the weights are stored: each weight is rounded to ``decimals`` decimals and written as an
integer count of ``10**-decimals`` (3 decimals: 0.123 is stored as 123), one byte per weight
for up to 2 decimals, two bytes (little-endian) for 3 or 4, then base64. A 6-layer x 12-head
trace at 64 tokens is 6 * 12 * 64 * 64 * 2 bytes = 590 KB, 786 KB as base64 (``decimals=2``:
half that).

Safety: tokens are data, never markup. They go into the page only inside a JSON block whose
``<``, ``>`` and ``&`` are escaped (``\\u003c``...), and the script inserts them with
``textContent``, so a token such as ``<img src=x onerror=alert(1)>`` or ``</script>`` shows
as text and runs nothing.
"""

from __future__ import annotations

import base64
import html
import json
import os
import re
import tempfile
from collections.abc import Iterable, Sequence
from os import PathLike
from pathlib import Path

import numpy as np

from minitransformer.trace import Trace
from viz.html_assets import CONTENT_SECURITY_POLICY, CSS, PAGE, SCRIPT
from viz.style import (
    MASKED_COLOR,
    check_batch,
    check_index,
    check_indices,
    drawable,
    head_color,
    require_names,
    token_labels,
    weights_cmap,
)

#: Number of colours of the heatmap scale sent to the page (the ``viz.style`` colour map).
COLORMAP_STEPS = 256


def to_html(
    trace: Trace,
    tokens: Sequence[str] | None,
    path: str | PathLike[str] | None = None,
    *,
    layers: Iterable[int] | None = None,
    heads: Iterable[int] | None = None,
    batch: int = 0,
    title: str | None = None,
    decimals: int = 3,
    layer: int | None = None,
    head: int | None = None,
    query: int | None = None,
) -> str:
    """Write the attention weights of a trace as one interactive, self-contained HTML page.

    Parameters
    ----------
    trace : Trace
        Needs ``blocks.{l}.attn.weights`` (B, H, S, S) and ``blocks.{l}.attn.mask`` of every
        layer shown.
    tokens : sequence of str, or None
        The S tokens of the sequence (padding included); None labels them 0 .. S-1.
    path : str or path-like, optional
        Where to write the page (UTF-8, all at once: a failed write leaves the file as it was).
        Default: only return it.
    layers, heads : iterables of int, optional
        Which layers and heads the page holds, in this order (default: all). Fewer heads make a
        smaller file: its size grows with layers x heads x n^2.
    batch : int
        Which sequence of the batch.
    title : str, optional
        Heading of the page (default: "Attention weights"). A lone surrogate, in the title or
        a token, is written as its escape (``"\\udc80"``), as in the figures.
    decimals : int
        Weights are stored rounded to this many decimals (1 to 4); the page shows them so.
    layer, head : int, optional
        The head the page opens at; each must be among ``layers`` and ``heads`` (default: the
        first of each).
    query : int, optional
        A query position (of the trace, padding included) to focus and pin when the page
        opens; it must be a real token, not padding. Default: no focus.

    Returns
    -------
    str
        The HTML page. When the trace has a padding mask, the page holds the real tokens of
        the sequence only (keys no query may attend to are dropped, with their rows), and says
        so; a causal mask is kept and drawn grey.

    Raises
    ------
    KeyError
        The trace did not record the weights or masks (made with ``keep=``).
    IndexError, TypeError, ValueError
        A layer, head, query or batch out of range (or a starting layer or head that the page
        does not hold, a padding query), tokens of the wrong length, a bad ``decimals``.
    """
    layers = check_indices(layers, trace.config.n_layers, "layers", "layer")
    heads = check_indices(heads, trace.config.n_heads, "heads", "head")
    names = [f"blocks.{l}.attn.{part}" for l in layers for part in ("weights", "mask")]
    require_names(trace, names, figure="the HTML export")
    batch = check_batch(trace, batch, names[0])
    if isinstance(tokens, str):
        raise TypeError("tokens must be a sequence of strings (one per position), got one str")
    if title is not None and not isinstance(title, str):
        raise TypeError(f"title must be a str, got {type(title).__name__}")
    scale, dtype = _storage(decimals)

    # (layers, heads, S, S) weights of this batch row and the (layers, S, S) masks.
    weights = np.stack([trace[f"blocks.{l}.attn.weights"][batch, heads] for l in layers])
    S = weights.shape[-1]
    labels = token_labels(tokens, S)
    masks = np.stack([_full_mask(trace[f"blocks.{l}.attn.mask"][batch], S) for l in layers])

    # Keep the real tokens: the keys some query may attend to (padding keys are masked for all).
    real = np.flatnonzero(masks[0].any(axis=0))
    if real.size == 0:
        raise ValueError(f"batch row {batch} has no real token: its mask allows no key")
    weights = weights[:, :, real][:, :, :, real]  # (layers, heads, n, n)
    masks = masks[:, real][:, :, real]  # (layers, n, n)
    if not np.isfinite(weights).all():
        raise ValueError("the trace's attention weights are not all finite")

    start = {
        "layer": _start_index(layer, layers, trace.config.n_layers, "layer", "layers"),
        "head": _start_index(head, heads, trace.config.n_heads, "head", "heads"),
        "query": None if query is None else _start_query(query, S, real),
    }

    stored = np.rint(np.clip(weights, 0.0, 1.0) * scale).astype(dtype)  # e.g. 0.1234 -> 123
    data = {
        "title": "Attention weights" if title is None else drawable(title),
        "about": _about(batch, S, real, decimals),
        "layers": layers,
        "heads": heads,
        "tokens": [labels[i] for i in real],
        "positions": real.tolist(),
        "decimals": decimals,
        "weights": {
            "scale": scale,
            "bytes_per_weight": stored.itemsize,
            "base64": _base64(stored),
        },
        "mask": None if masks.all() else _base64(masks.astype(np.uint8)),
        "colormap": _colormap_hex(COLORMAP_STEPS),
        "masked_color": MASKED_COLOR,
        "head_colors": [head_color(h) for h in heads],
        "start": start,
    }
    page = _fill(
        PAGE,
        {
            "csp": html.escape(CONTENT_SECURITY_POLICY),
            "title": html.escape(data["title"]),
            "css": CSS,
            "data": json_for_script(data),
            "script": SCRIPT,
        },
    )
    if path is not None:
        write_atomically(Path(path), page)
    return page


def write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` as UTF-8 all at once: into a new file beside it, then renamed
    over it. A write that fails half-way leaves ``path`` as it was (never empty or cut)."""
    file = tempfile.NamedTemporaryFile(
        "w", encoding="utf-8", dir=path.parent, prefix=f".{path.name}.", delete=False
    )
    try:
        with file:
            file.write(text)
        # A temporary file is private (0600); give the page the mode it had, or rw-r--r--.
        os.chmod(file.name, path.stat().st_mode if path.exists() else 0o644)
        os.replace(file.name, path)
    except BaseException:
        os.unlink(file.name)
        raise


def json_for_script(value: object) -> str:
    """``value`` as JSON that is safe inside ``<script type="application/json">``.

    The HTML parser ends a script element at the first ``</script``, and ``<!--`` changes how
    it reads what follows; escaping every ``<``, ``>`` and ``&`` as ``\\u003c``, ``\\u003e``,
    ``\\u0026`` (which JSON.parse turns back into the characters) means neither can occur.
    ``ensure_ascii`` writes every non-ASCII character as ``\\uXXXX`` too, including the line
    separators U+2028 and U+2029 that old JavaScript parsers reject inside strings.
    """
    text = json.dumps(value, ensure_ascii=True, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _storage(decimals: object) -> tuple[int, np.dtype]:
    """The scale (10**decimals) and the smallest unsigned integer type holding 0 .. scale
    (little-endian, whatever the machine, as the page's script reads it)."""
    if isinstance(decimals, bool) or not isinstance(decimals, (int, np.integer)):
        raise TypeError(f"decimals must be an int, got {type(decimals).__name__} {decimals!r}")
    if not 1 <= decimals <= 4:
        raise ValueError(f"decimals must be in 1 .. 4, got {decimals}")
    scale = 10 ** int(decimals)
    return scale, np.dtype("u1" if scale <= 255 else "<u2")


def _start_index(value: object, shown: list[int], n: int, name: str, plural: str) -> int:
    """Where the starting ``layer`` (or ``head``), one of ``n``, is in the page's list ``shown``
    (None: the first)."""
    if value is None:
        return 0
    index = check_index(value, n, name)
    if index not in shown:
        raise ValueError(f"{name} {index} is not in the page: {plural} holds {shown}")
    return shown.index(index)


def _start_query(query: object, S: int, real: np.ndarray) -> int:
    """Where query position ``query`` is among the ``real`` positions the page shows."""
    position = check_index(query, S, "query")
    if position not in real:
        raise ValueError(f"query {position} is a padding position: the page shows only real tokens")
    return int(np.flatnonzero(real == position)[0])


def _full_mask(mask: np.ndarray, S: int) -> np.ndarray:
    """One batch row's mask, (1, 1, S) or (1, S, S), as the (S, S) bool "query i may see key j"."""
    return np.broadcast_to(mask[0], (S, S)).astype(bool)


def _about(batch: int, S: int, real: np.ndarray, decimals: int) -> str:
    """The sentence under the title: which tokens are shown and how exact the numbers are."""
    shown = f"Sequence {batch} of the batch: {real.size} tokens"
    if real.size < S:
        shown += (
            f" (left out: {S - real.size} padding {_plural(S - real.size, 'token')} of its {S}"
            f" positions, which the padding mask lets no query attend to)"
        )
    return f"{shown}. Weights rounded to {decimals} decimals."


def _base64(array: np.ndarray) -> str:
    """The bytes of ``array`` in row-major order, as base64 text."""
    return base64.b64encode(np.ascontiguousarray(array).tobytes()).decode("ascii")


def _plural(count: int, word: str) -> str:
    return word if count == 1 else word + "s"


def _colormap_hex(steps: int) -> list[str]:
    """``steps`` colours of :func:`viz.style.weights_cmap`, from weight 0 to the largest."""
    rgb = weights_cmap()(np.linspace(0.0, 1.0, steps))[:, :3]
    return ["#{:02x}{:02x}{:02x}".format(*row) for row in np.rint(rgb * 255).astype(int)]


def _fill(template: str, values: dict[str, str]) -> str:
    """Replace every ``{{name}}`` of ``template`` by ``values[name]``, in one pass."""
    return re.sub(r"\{\{(\w+)\}\}", lambda match: values[match.group(1)], template)
