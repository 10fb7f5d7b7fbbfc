"""The attention of a trace as one self-contained HTML page: open it in any browser, offline.

``to_html`` writes a single file with its script and style inline. It loads nothing from the
network (no CDN, no web fonts; a Content-Security-Policy forbids it) and needs no Python
kernel: the numbers travel inside the page. The page's skeleton, style sheet and script are
files of this package, ``viz/assets/attention.html``, ``attention.css`` and ``attention.js``
(plain JavaScript, no library): read them as what they are. In the page:

- layer and head selectors, a heatmap of the selected head (queries down, keys across) and the
  focused query's weights listed largest first (or by position);
- hover a query token (or a heatmap row) to focus it in every view; click to keep that focus;
  the arrow keys move the focus and the head, Page Up / Page Down the layer;
- the head view (BertViz): query and key columns joined by lines as opaque as the weights,
  several heads in their colours (:func:`viz.style.head_color`), toggled by clicking them;
  for a sentence pair, a filter keeps only A→B, B→A, A→A or B→B;
- the neuron view (BertViz) of the focused query: q, each key's k, q ⊙ k, the recorded q · k,
  the recorded scores (÷ √d_head), the weights, v and the weighted values, with z;
- the step-by-step view of the head (Q, K, scores, weights, Z side by side; hovering a token
  lights it up in all five);
- the query–key plane (AttentionViz): queries and keys of the head on their first two
  principal axes (computed here, in Python, by :func:`viz.qk_space.qk_projection`);
- the model view: a layers x heads grid of thumbnails; click one to select that head.

What is stored, and how small (``benchmarks/html_size.py`` measures it):

- the weights, rounded to ``decimals`` decimals and written as integer counts of
  ``10**-decimals`` (one byte each up to 2 decimals, two bytes for 3 or 4). Up to
  :data:`ALL_KEYS_UP_TO` tokens every weight is kept; past that, each query row keeps its
  ``top_k`` largest weights with their key positions, and the sum of the others ("the rest");
- for the layers in ``details`` (default: the starting layer), what the neuron, step and
  plane views need: q, k, v and z of every token as 8-bit integers with one scale per token
  and head (within 0.4 % of each vector's largest entry), the recorded q · k and scores of
  the stored weights as 16-bit integers with one scale per head, and the plane's coordinates;
- all of it in one ``zlib`` stream, base64-encoded; the page inflates it with the browser's
  own ``DecompressionStream``.

Safety: tokens are data, never markup. They go into the page only inside a JSON block whose
``<``, ``>`` and ``&`` are escaped (``\\u003c``...), and the script inserts them with
``textContent``, so a token such as ``<img src=x onerror=alert(1)>`` or ``</script>`` shows
as text and runs nothing. A lone surrogate (in a token or the title) is written as its escape.
"""

from __future__ import annotations

import base64
import html
import importlib.resources
import json
import os
import re
import tempfile
import zlib
from collections.abc import Iterable, Sequence
from os import PathLike
from pathlib import Path

import matplotlib as mpl
import numpy as np
from matplotlib.colors import Colormap, to_hex
from threadpoolctl import threadpool_limits

from minitransformer.trace import Trace
from viz.checks import check_batch, check_index, check_indices, require_names
from viz.qk_space import qk_projection
from viz.style import (
    MASKED_COLOR,
    NORMS_CMAP,
    SIGNED_CMAP,
    drawable,
    head_color,
    token_labels,
    weights_cmap,
)

#: What the page may load: nothing from anywhere (no network, no fonts, no frames), only its
#: own inline script and style, and ``data:`` images.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "img-src data:; base-uri 'none'; form-action 'none'"
)
#: Number of colours of the heatmap scale sent to the page (the ``viz.style`` colour map).
COLORMAP_STEPS = 256
#: Up to this many tokens every weight is stored; past it, each row's ``top_k`` largest.
ALL_KEYS_UP_TO = 64
#: Default ``top_k`` past :data:`ALL_KEYS_UP_TO` tokens.
TOP_K = 16
#: Colours of the sequences of a corpus plane, in turn (a categorical map; they repeat after 10).
SEQUENCE_CMAP = mpl.colormaps["tab10"]
#: What the neuron, step and plane views read from each detail layer.
DETAIL_PARTS = ("q", "k", "v", "z", "qk", "scores")


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
    top_k: int | None = None,
    details: Iterable[int] | None = None,
    norms: np.ndarray | None = None,
    corpus: bool = False,
) -> str:
    """Write the attention of a trace as one interactive, self-contained HTML page.

    Parameters
    ----------
    trace : Trace
        Needs ``blocks.{l}.attn.weights`` (B, H, S, S) and ``blocks.{l}.attn.mask`` of every
        layer shown, and ``blocks.{l}.attn.`` ``q, k, v, z, qk, scores`` of the ``details``
        layers.
    tokens : sequence of str, or sequence of B sequences of str, or None
        The S tokens of the sequence (padding included); with ``corpus=True``, one such list
        per sequence of the batch. None labels them 0 .. S-1.
    path : str or path-like, optional
        Where to write the page (UTF-8, all at once: a failed write leaves the file as it was).
        Default: only return it.
    layers, heads : iterables of int, optional
        Which layers and heads the page holds, in this order (default: all).
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
    top_k : int, optional
        Keys stored per query row, its largest weights (the others are summed). Default: all
        of them up to :data:`ALL_KEYS_UP_TO` real tokens, else :data:`TOP_K`.
    details : iterable of int, optional
        Layers (among ``layers``) whose vectors the neuron, step and plane views show (and
        whose ``norms`` the page holds); each adds about ``S * d_model * 4`` bytes (and
        ``H * S * min(S, top_k) * 4`` with norms). Default: the starting layer.
    norms : ndarray of shape (L, B, H, S, S), optional
        ``value_weighted_norms(model, trace)`` (:mod:`minitransformer.interpret`): Kobayashi et
        al.'s ``||alpha_ij f(x_j)||``, how much key j adds to query i's output. For the
        ``details`` layers, the page draws them beside the weights, lists them with them and
        puts them in the neuron view; it computes none of them. Stored as the weights are
        (every key up to :data:`ALL_KEYS_UP_TO` tokens, else each row's ``top_k`` largest norms
        and the rest summed), as 16-bit integers with one scale per head.
    corpus : bool
        AttentionViz's corpus view: the query-key plane of each head pools the real tokens of
        every sequence of the batch (projected together), coloured by sequence, with every head
        of the layer as a small multiple (click one to enlarge it). The other views show
        sequence ``batch``. Default: the plane holds sequence ``batch`` only.

    Returns
    -------
    str
        The HTML page. It holds the real tokens of the sequence only (from the trace's padding
        mask: padding is neither a query nor a key), and says so; a causal mask is kept and
        drawn grey.

    Raises
    ------
    KeyError
        The trace did not record what the page needs (made with ``keep=``).
    IndexError, TypeError, ValueError
        A layer, head, query or batch out of range (or a starting layer, head or detail layer
        that the page does not hold, a padding query), tokens of the wrong length, a bad
        ``decimals``, ``top_k`` or ``norms``.
    """
    layers = check_indices(layers, trace.config.n_layers, "layers", "layer")
    heads = check_indices(heads, trace.config.n_heads, "heads", "head")
    names = [f"blocks.{l}.attn.{part}" for l in layers for part in ("weights", "mask")]
    require_names(trace, names, figure="the HTML export")
    batch = check_batch(trace, batch, names[0])
    if isinstance(tokens, str):
        raise TypeError("tokens must be a sequence of strings (one per position), got one str")
    if not isinstance(corpus, (bool, np.bool_)):
        raise TypeError(f"corpus must be True or False, got {type(corpus).__name__} {corpus!r}")
    if title is not None and not isinstance(title, str):
        raise TypeError(f"title must be a str, got {type(title).__name__}")
    scale, dtype = _storage(decimals)
    start_layer = _start_index(layer, layers, trace.config.n_layers, "layer", "layers")
    if details is None:
        detail = [layers[start_layer]]
    elif isinstance(details, (int, np.integer)):
        raise TypeError(f"details must be a list of layers (e.g. [{int(details)}]), got an int")
    else:  # may be empty: no vectors at all
        detail = sorted({check_index(l, trace.config.n_layers, "layer") for l in details})
    for l in detail:
        if l not in layers:
            raise ValueError(f"details layer {l} is not in the page: layers holds {layers}")
    require_names(
        trace, [f"blocks.{l}.attn.{p}" for l in detail for p in DETAIL_PARTS], "the HTML export"
    )

    # (layers, heads, S, S) weights of this batch row and the (layers, S, S) masks.
    weights = np.stack([trace[f"blocks.{l}.attn.weights"][batch, heads] for l in layers])
    S = weights.shape[-1]
    every_label = _corpus_labels(tokens, S, trace[names[0]].shape[0]) if corpus else None
    labels = token_labels(tokens, S) if every_label is None else every_label[batch]
    masks = np.stack([_full_mask(trace[f"blocks.{l}.attn.mask"][batch], S) for l in layers])
    real = _real_positions(trace, batch, masks)
    n = real.size
    weights = weights[:, :, real][:, :, :, real]  # (layers, heads, n, n)
    masks = masks[:, real][:, :, real]  # (layers, n, n)
    if not np.isfinite(weights).all():
        raise ValueError("the trace's attention weights are not all finite")
    k = _top_k(top_k, n)
    start = {
        "layer": start_layer,
        "head": _start_index(head, heads, trace.config.n_heads, "head", "heads"),
        "query": None if query is None else _start_query(query, S, real),
    }

    arrays = _weight_arrays(weights, k, scale, dtype)
    keys = arrays.get("keys")  # None: every key is stored
    if not masks.all():
        arrays["mask"] = masks.astype(np.uint8)
    if norms is not None:
        if not detail:
            raise ValueError("norms are shown for the details layers, and details is empty")
        chosen = _check_norms(norms, trace, names[0])[detail][:, batch][:, heads]
        arrays.update(_norm_arrays(chosen[:, :, real][:, :, :, real], k))
    arrays.update(_detail_arrays(trace, batch, detail, layers, heads, real, keys))
    segments = _segments(trace, batch, real)
    if every_label is None:
        plane_rows = [(batch, real)]
        plane = None
    else:
        plane_rows = [(b, _row_positions(trace, b, layers[0], S)) for b in range(len(every_label))]
        plane = _corpus(trace, plane_rows, every_label, batch)
    arrays.update(_plane_arrays(trace, detail, heads, plane_rows))
    about = _about(batch, S, real, decimals, k)
    if plane is not None:
        about += (
            f" The query-key plane holds the {len(plane['tokens'])} real tokens of all"
            f" {plane['count']} sequences of the batch."
        )

    data = {
        "title": "Attention weights" if title is None else drawable(title),
        "about": about,
        "batch": batch,
        "layers": layers,
        "heads": heads,
        "tokens": [labels[i] for i in real],
        "positions": real.tolist(),
        "segments": segments,
        "corpus": plane,
        "decimals": decimals,
        "scale": scale,
        "top_k": k,
        "details": [layers.index(l) for l in detail],
        "d_head": trace.config.d_model // trace.config.n_heads,
        "scaled_scores": bool(trace.config.scale_scores),
        "arrays": _pack(arrays),
        "colormap": _colormap_hex(weights_cmap(), COLORMAP_STEPS),
        "norms_colormap": _colormap_hex(mpl.colormaps[NORMS_CMAP], COLORMAP_STEPS),
        "signed_colormap": _colormap_hex(mpl.colormaps[SIGNED_CMAP], COLORMAP_STEPS),
        "masked_color": MASKED_COLOR,
        "head_colors": [head_color(h) for h in heads],
        "start": start,
    }
    page = _fill(
        asset("attention.html"),
        {
            "csp": html.escape(CONTENT_SECURITY_POLICY),
            "title": html.escape(data["title"]),
            "css": asset("attention.css"),
            "data": json_for_script(data),
            "script": asset("attention.js"),
        },
    )
    if path is not None:
        write_atomically(Path(path), page)
    return page


def asset(name: str) -> str:
    """The text of ``viz/assets/<name>``: the page skeleton (``attention.html``), its style
    sheet (``attention.css``) or its script (``attention.js``), read from the installed package.

    The skeleton holds five placeholders, ``{{csp}}``, ``{{title}}``, ``{{css}}``, ``{{data}}``
    and ``{{script}}``, filled in one pass by :func:`to_html` (so text put in one placeholder is
    never read as another).
    """
    return (importlib.resources.files("viz") / "assets" / name).read_text(encoding="utf-8")


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


def unpack(packed: dict) -> dict[str, np.ndarray]:
    """The arrays of a page's ``"arrays"`` entry, as its script reads them (for tests)."""
    blob = zlib.decompress(base64.b64decode(packed["base64"]))
    return {
        name: np.frombuffer(blob, np.dtype(dtype), int(np.prod(shape)), offset).reshape(shape)
        for name, (dtype, shape, offset) in packed["layout"].items()
    }


# ----------------------------------------------------------------------------- storage


def _storage(decimals: object) -> tuple[int, np.dtype]:
    """The scale (10**decimals) and the smallest unsigned integer type holding 0 .. scale
    (little-endian, whatever the machine, as the page's script reads it)."""
    if isinstance(decimals, bool) or not isinstance(decimals, (int, np.integer)):
        raise TypeError(f"decimals must be an int, got {type(decimals).__name__} {decimals!r}")
    if not 1 <= decimals <= 4:
        raise ValueError(f"decimals must be in 1 .. 4, got {decimals}")
    scale = 10 ** int(decimals)
    return scale, np.dtype("u1" if scale <= 255 else "<u2")


def _top_k(top_k: object, n: int) -> int:
    """How many keys each row stores: ``top_k`` (at most n), or the default for n tokens."""
    if top_k is None:
        return n if n <= ALL_KEYS_UP_TO else min(TOP_K, n)
    if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)):
        raise TypeError(f"top_k must be an int or None, got {type(top_k).__name__} {top_k!r}")
    if top_k < 1:
        raise ValueError(f"top_k must be at least 1, got {top_k}")
    return min(int(top_k), n)


def _largest(values: np.ndarray, k: int) -> np.ndarray:
    """The positions of each row's ``k`` largest ``values`` (..., n), largest first: (..., k).

    argpartition puts each row's k largest in its last k places without sorting the row; only
    those k are then sorted.
    """
    n = values.shape[-1]
    largest = np.argpartition(values, n - k, axis=-1)[..., n - k :]
    order = np.argsort(-np.take_along_axis(values, largest, axis=-1), axis=-1, kind="stable")
    return np.take_along_axis(largest, order, axis=-1)


def _weight_arrays(
    weights: np.ndarray, k: int, scale: int, dtype: np.dtype
) -> dict[str, np.ndarray]:
    """The weights (layers, heads, n, n) as the page stores them, counts of ``1 / scale``.

    Every key (k = n): ``weights`` (layers, heads, n, n). Else each row's k largest, largest
    first: ``weights`` (layers, heads, n, k) at the key positions ``keys``, and ``rest``
    (layers, heads, n), the sum of the row's other weights.
    """
    stored = np.rint(np.clip(weights, 0.0, 1.0) * scale).astype(dtype)  # e.g. 0.1234 -> 123
    n = weights.shape[-1]
    if k == n:
        return {"weights": stored}
    keys = _largest(weights, k)  # (layers, heads, n, k)
    kept = np.take_along_axis(weights, keys, axis=-1)
    rest = np.clip(weights.sum(axis=-1) - kept.sum(axis=-1), 0.0, 1.0)  # (layers, heads, n)
    return {
        "weights": np.take_along_axis(stored, keys, axis=-1),
        "keys": keys.astype(_index_dtype(n)),
        "rest": np.rint(rest * scale).astype(dtype),
    }


def _check_norms(norms: object, trace: Trace, name: str) -> np.ndarray:
    """``norms`` as a float64 array of the shape value_weighted_norms gives for ``trace``."""
    if not isinstance(norms, np.ndarray):
        raise TypeError(
            f"norms must be the ndarray value_weighted_norms(model, trace) returns, got "
            f"{type(norms).__name__}"
        )
    B, _, S, _ = trace[name].shape
    expected = (trace.config.n_layers, B, trace.config.n_heads, S, S)
    if norms.shape != expected:
        raise ValueError(
            f"norms must have shape {expected} (value_weighted_norms of this trace), got "
            f"{norms.shape}"
        )
    if not np.issubdtype(norms.dtype, np.floating):
        raise TypeError(f"norms must hold floats, got dtype {norms.dtype}")
    if not np.isfinite(norms).all() or (norms < 0).any():
        raise ValueError("norms must be finite and >= 0 (they are lengths of vectors)")
    return norms.astype(np.float64)


def _norm_arrays(norms: np.ndarray, k: int) -> dict[str, np.ndarray]:
    """The value-weighted norms (detail layers, heads, n, n) as the page stores them.

    As the weights (see :func:`_weight_arrays`), but each row keeps its own k largest *norms*
    (``norm_keys``), which need not be the keys of its largest weights, and the numbers are
    16-bit counts of ``norm_scale`` (detail layers, heads): the head's largest number / 65535.
    """
    n = norms.shape[-1]
    out: dict[str, np.ndarray] = {}
    if k == n:
        kept, rest = norms, np.zeros(norms.shape[:-1])
    else:
        keys = _largest(norms, k)
        kept = np.take_along_axis(norms, keys, axis=-1)
        rest = np.clip(norms.sum(axis=-1) - kept.sum(axis=-1), 0.0, None)  # (layers, heads, n)
        out["norm_keys"] = keys.astype(_index_dtype(n))
    top = np.maximum(kept.max(axis=(2, 3)), rest.max(axis=2))  # (layers, heads)
    scale = np.where(top > 0, top / 65535.0, 1.0)[:, :, None, None]
    out["norms"] = np.rint(kept / scale).astype("<u2")
    if k < n:
        out["norm_rest"] = np.rint(rest / scale[..., 0]).astype("<u2")
    out["norm_scale"] = scale[:, :, 0, 0].astype("<f4")
    return out


def _index_dtype(n: int) -> np.dtype:
    """The smallest unsigned integer type that holds the positions 0 .. n-1."""
    return np.dtype("u1" if n <= 256 else "<u2")


def _to_int8(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``x`` (..., d) as int8 with one scale per vector: ``x ≈ stored * scale[..., None]``."""
    scale = np.abs(x).max(axis=-1) / 127.0
    scale = np.where(scale > 0, scale, 1.0).astype("<f4")
    return np.rint(x / scale[..., None]).astype(np.int8), scale


def _to_int16(x: np.ndarray, axes: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """``x`` as int16 with one scale per index of the leading dimensions not in ``axes``."""
    scale = np.abs(x).max(axis=axes, keepdims=True) / 32767.0
    scale = np.where(scale > 0, scale, 1.0)
    stored = np.rint(x / scale).astype("<i2")
    return stored, scale.reshape(scale.shape[: min(axes)]).astype("<f4")


def _detail_arrays(
    trace: Trace,
    batch: int,
    detail: list[int],
    layers: list[int],
    heads: list[int],
    real: np.ndarray,
    keys: np.ndarray | None,
) -> dict[str, np.ndarray]:
    """The vectors and recorded dot products of the ``detail`` layers.

    ``keys`` is (len(layers), heads, n, k), the stored key positions of every row of the
    page's ``layers`` (None: every key is stored).
    """
    if not detail:
        return {}
    out: dict[str, np.ndarray] = {}

    def part(l: int, name: str) -> np.ndarray:  # (heads, n, ...) of the real tokens
        return trace[f"blocks.{l}.attn.{name}"][batch, heads][:, real]

    for name in ("q", "k", "v", "z"):
        vectors = np.stack([part(l, name) for l in detail]).astype(np.float64)  # (D, H, n, dh)
        out[name], out[f"{name}_scale"] = _to_int8(vectors)
    for name in ("qk", "scores"):
        pairs = np.stack([part(l, name)[:, :, real] for l in detail]).astype(np.float64)
        if keys is not None:  # the entries of the stored weights only
            rows = keys[[layers.index(l) for l in detail]]  # (D, H, n, k)
            pairs = np.take_along_axis(pairs, rows.astype(np.intp), axis=-1)
        out[name], out[f"{name}_scale"] = _to_int16(pairs, axes=(2, 3))
    return out


def _plane_arrays(
    trace: Trace, detail: list[int], heads: list[int], rows: list[tuple[int, np.ndarray]]
) -> dict[str, np.ndarray]:
    """The query-key plane of every head of the ``detail`` layers: ``plane`` (D, H, 2N, 2),
    the N queries then the N keys, and ``explained`` (D, H, 2), the variance on each axis.

    ``rows`` lists (batch row, its real positions): the sequence the page shows, or every
    sequence of the batch (corpus mode); their N real tokens are projected together.
    """
    if not detail:
        return {}

    def points(l: int, h: int, name: str) -> np.ndarray:  # (N, d_head), row after row
        vectors = trace[f"blocks.{l}.attn.{name}"]
        return np.vstack([vectors[b, h, real] for b, real in rows]).astype(np.float64)

    # The SVD of each projection is small ((2N, d_head)); BLAS threads only fight over it (on a
    # busy machine 0.4 s each instead of 3 ms), so it runs on one.
    with threadpool_limits(limits=1, user_api="blas"):
        planes = [
            qk_projection(points(l, h, "q"), points(l, h, "k")) for l in detail for h in heads
        ]
    shape = (len(detail), len(heads))
    coordinates = np.stack([np.vstack([p.queries, p.keys]) for p in planes]).astype("<f4")
    return {
        "plane": coordinates.reshape(*shape, *coordinates.shape[1:]),
        "explained": np.stack([p.explained for p in planes]).astype("<f4").reshape(*shape, 2),
    }


def _pack(arrays: dict[str, np.ndarray]) -> dict:
    """Every array in one zlib stream, base64: ``{"base64": ..., "layout": {name: [dtype,
    shape, offset]}}``. Each array starts at a multiple of 8 bytes, so the script can view it
    as a typed array; every type is little-endian, as the script reads it."""
    layout = {}
    chunks = []
    offset = 0
    for name, array in arrays.items():
        data = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()
        layout[name] = [array.dtype.newbyteorder("<").str, list(array.shape), offset]
        padding = -len(data) % 8
        chunks += [data, bytes(padding)]
        offset += len(data) + padding
    blob = zlib.compress(b"".join(chunks), 6)
    return {"base64": base64.b64encode(blob).decode("ascii"), "layout": layout}


# ----------------------------------------------------------------------------- the sequence


def _real_positions(trace: Trace, batch: int, masks: np.ndarray) -> np.ndarray:
    """The positions the page shows: the real tokens of the batch row (the trace's padding
    mask), or, for a trace that does not know it, the keys some query may attend to."""
    if trace.padding_mask is not None:
        real = np.flatnonzero(trace.real_tokens(batch))
    else:
        real = np.flatnonzero(masks[0].any(axis=0))
    if real.size == 0:
        raise ValueError(f"batch row {batch} has no real token: its mask allows no key")
    return real


def _row_positions(trace: Trace, b: int, layer: int, S: int) -> np.ndarray:
    """The real positions of batch row ``b`` (as :func:`_real_positions`, from ``layer``'s mask
    for a trace that does not know its padding)."""
    mask = _full_mask(trace[f"blocks.{layer}.attn.mask"][b], S)
    return _real_positions(trace, b, mask[None])


def _corpus_labels(tokens: object, S: int, B: int) -> list[list[str]]:
    """The labels of every sequence of the batch, from ``tokens``: B lists of S (or None)."""
    if tokens is None:
        return [token_labels(None, S) for _ in range(B)]
    if not isinstance(tokens, Sequence) or any(isinstance(t, str) for t in tokens):
        raise TypeError(
            f"with corpus=True, tokens must be one list of tokens per sequence of the batch "
            f"(B = {B} lists of {S}), got {type(tokens).__name__} of "
            f"{type(tokens[0]).__name__ if isinstance(tokens, Sequence) and tokens else '...'}"
        )
    if len(tokens) != B:
        raise ValueError(f"tokens has {len(tokens)} sequences but the trace's batch has {B}")
    return [token_labels(row, S, name=f"tokens[{b}]") for b, row in enumerate(tokens)]


def _corpus(
    trace: Trace, rows: list[tuple[int, np.ndarray]], labels: list[list[str]], batch: int
) -> dict:
    """What the page says about each of the N points of a corpus plane: token, sequence and
    position, its segment for sentence pairs, and where the shown sequence's points start."""
    where = [(b, int(i)) for b, real in rows for i in real]
    offset = sum(real.size for b, real in rows if b < batch)
    types = trace.token_type_ids
    segments = None if types is None else [int(types[b, i]) for b, i in where]
    return {
        "tokens": [labels[b][i] for b, i in where],
        "sequences": [b for b, _ in where],
        "positions": [i for _, i in where],
        "segments": None if segments is None or len(set(segments)) < 2 else segments,
        "offset": offset,
        "count": len(rows),
        "colors": [to_hex(SEQUENCE_CMAP(b % SEQUENCE_CMAP.N)) for b in range(len(rows))],
    }


def _segments(trace: Trace, batch: int, real: np.ndarray) -> list[int] | None:
    """The segment (token type) of every shown token, or None for a single segment."""
    if trace.token_type_ids is None:
        return None
    segments = np.asarray(trace.token_type_ids)[batch, real]
    return None if np.unique(segments).size < 2 else segments.astype(int).tolist()


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


def _about(batch: int, S: int, real: np.ndarray, decimals: int, k: int) -> str:
    """The sentence under the title: which tokens are shown and how exact the numbers are."""
    shown = f"Sequence {batch} of the batch: {real.size} tokens"
    if real.size < S:
        shown += (
            f" (left out: {S - real.size} padding {_plural(S - real.size, 'token')} of its {S}"
            f" positions, which are neither queries nor keys)"
        )
    kept = (
        ""
        if k == real.size
        else f" Each query keeps its {k} largest weights; the other keys are summed as the rest."
    )
    return f"{shown}. Weights rounded to {decimals} decimals.{kept}"


def _plural(count: int, word: str) -> str:
    return word if count == 1 else word + "s"


def _colormap_hex(colormap: Colormap, steps: int) -> list[str]:
    """``steps`` colours of ``colormap``, from its low end to its high end."""
    rgb = colormap(np.linspace(0.0, 1.0, steps))[:, :3]
    return ["#{:02x}{:02x}{:02x}".format(*row) for row in np.rint(rgb * 255).astype(int)]


def _fill(template: str, values: dict[str, str]) -> str:
    """Replace every ``{{name}}`` of ``template`` by ``values[name]``, in one pass."""
    return re.sub(r"\{\{(\w+)\}\}", lambda match: values[match.group(1)], template)
