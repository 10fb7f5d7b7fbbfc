"""The argument checks of every figure: one clear error per kind of mistake.

Each check returns the value as the figure uses it, or raises ``TypeError`` (wrong kind of
value), ``IndexError`` (an index out of range, naming the valid range), ``ValueError`` or
``KeyError`` (a trace entry the figure needs and the trace did not record), with a message that
names the argument -- never a bare error from deep inside NumPy or matplotlib.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from minitransformer.trace import Trace


def _as_index(value: object, name: str) -> int:
    """``value`` as a Python int, or ``TypeError`` naming the argument (bools are refused)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    return int(value)


def check_index(value: object, n: int, name: str) -> int:
    """``value`` as an int in ``[0, n)``; ``IndexError`` naming ``name`` and the valid range."""
    index = _as_index(value, name)
    if not 0 <= index < n:
        raise IndexError(f"{name} must be in [0, {n}), got {index}")
    return index


def check_layer(trace: Trace, layer: object) -> int:
    """``layer`` as an int in ``[0, n_layers)`` of the trace's config.

    Raises ``TypeError`` for a non-integer, ``IndexError`` naming the valid range
    (``"layer must be in [0, 6), got 7"``).
    """
    return check_index(layer, trace.config.n_layers, "layer")


def check_layer_head(trace: Trace, layer: object, head: object) -> tuple[int, int]:
    """``(layer, head)`` as ints, each checked against the trace's config like :func:`check_layer`
    (``"head must be in [0, 12), got 12"``)."""
    return check_layer(trace, layer), check_index(head, trace.config.n_heads, "head")


def check_indices(values: Iterable[object] | None, n: int, name: str, singular: str) -> list[int]:
    """A list of indices (``heads=[0, 3]``, ``layers=range(2)``), each in ``[0, n)``.

    ``None`` means all of them. Raises ``ValueError`` for an empty list or a repeated index,
    ``TypeError``/``IndexError`` as :func:`check_index` (naming ``singular``).
    """
    if values is None:
        return list(range(n))
    if isinstance(values, (int, np.integer)):
        raise TypeError(f"{name} must be a list of ints (e.g. [{int(values)}]), got an int")
    checked = [check_index(v, n, singular) for v in values]
    if not checked:
        raise ValueError(f"{name} is empty: give at least one {singular}, or None for all")
    if len(set(checked)) != len(checked):
        raise ValueError(f"{name} repeats an index: {checked}")
    return checked


def check_batch(trace: Trace, batch: object, name: str) -> int:
    """``batch`` as an int in ``[0, B)``, where B is the batch size of the trace entry ``name``."""
    return check_index(batch, trace[name].shape[0], "batch")


def require_names(trace: Trace, names: Iterable[str], figure: str) -> None:
    """Raise ``KeyError`` listing every name ``figure`` needs that the trace did not record.

    A trace recorded with ``keep=`` (or made with ``trace.filter``) holds only some names;
    the message names the missing ones and says how to get them.
    """
    missing = [n for n in names if n not in trace]
    if missing:
        shown = ", ".join(repr(n) for n in missing[:8])
        more = f" and {len(missing) - 8} more" if len(missing) > 8 else ""
        raise KeyError(
            f"{figure} needs {shown}{more}, which this trace did not record (was it made with "
            f"keep= or trace.filter?): re-run model.run_with_trace without keep=, or keep these "
            f"names"
        )


def check_span(span: object, n: int) -> range:
    """The positions a figure shows: ``span`` (a slice of ``range(n)``), or all of them.

    ``span=slice(100, 164)`` shows positions 100 .. 163 of a long input; negative and open
    ends work as in Python (``slice(-32, None)``: the last 32). Raises ``TypeError`` for
    anything but a slice or None, ``ValueError`` for a step other than 1 or an empty span.
    """
    if span is None:
        return range(n)
    if not isinstance(span, slice):
        raise TypeError(
            f"span must be a slice of positions (e.g. span=slice(0, 64)) or None, got "
            f"{type(span).__name__} {span!r}"
        )
    if span.step not in (None, 1):
        raise ValueError(f"span must be a contiguous slice (step 1), got step {span.step!r}")
    shown = range(n)[span]
    if len(shown) == 0:
        raise ValueError(f"span {span!r} selects no position of the {n} tokens")
    return shown


def as_params(params: Any) -> Mapping[str, np.ndarray]:
    """``params`` as a name -> array mapping: a dict as it is, an Encoder's ``.params``.

    Raises ``TypeError`` for anything else.
    """
    if not isinstance(params, Mapping) and isinstance(getattr(params, "params", None), Mapping):
        params = params.params  # an Encoder: use its parameter dict
    if not isinstance(params, Mapping):
        raise TypeError(f"params must be model.params (a dict), got {type(params).__name__}")
    return params


def head_params(params: Any, layer: int, d_model: int) -> dict[str, np.ndarray]:
    """``W_Q, W_K, W_V, W_O`` of block ``layer`` from ``params`` (a dict, or a model's ``.params``).

    Raises ``TypeError`` if ``params`` is not a mapping, ``KeyError`` naming a missing weight,
    ``ValueError`` if a weight is not (d_model, d_model) (params of another model).
    """
    params = as_params(params)
    out = {}
    for w in ("W_Q", "W_K", "W_V", "W_O"):
        name = f"blocks.{layer}.attn.{w}"
        if name not in params:
            raise KeyError(f"params has no {name!r}: pass the params of the model of the trace")
        value = np.asarray(params[name])
        if value.shape != (d_model, d_model):
            raise ValueError(
                f"params[{name!r}] has shape {value.shape} but the trace's d_model is {d_model}: "
                "pass the params of the model that made the trace"
            )
        out[w] = value
    return out
