"""Argument checks shared by the ``interpret`` functions: one clear error per kind of mistake.

Each check returns the value as the type the function uses, or raises ``TypeError`` (wrong
kind of value) or ``ValueError`` (right kind, out of range) with a message that names the
argument, what it must be and what it got -- never a bare ``IndexError`` from deep inside
NumPy, and never a silent wrap-around (``classes=-1`` does *not* mean the last class).
"""

from __future__ import annotations

from typing import Any

import numpy as np


def _is_int(value: Any) -> bool:
    """Python or NumPy integers; ``True``/``False`` are not counts or indices."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def check_count(value: Any, name: str, minimum: int = 1) -> int:
    """``value`` as an int ``>= minimum`` (a number of steps, permutations, splits ...)."""
    if not _is_int(value):
        raise TypeError(f"{name} must be an int >= {minimum}, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value}")
    return int(value)


def check_index(value: Any, n: int, name: str, what: str = "") -> int:
    """``value`` as an int in ``[0, n)`` (negative indices are refused, not wrapped)."""
    if not _is_int(value):
        raise TypeError(
            f"{name} must be an int in [0, {n}){what}, got {type(value).__name__} {value!r}"
        )
    if not 0 <= value < n:
        raise ValueError(f"{name} must be in [0, {n}){what}, got {value}")
    return int(value)


def check_indices(values: Any, n: int, name: str, what: str = "") -> np.ndarray:
    """An int array whose every entry is in ``[0, n)``; the message names the first bad one."""
    a = np.asarray(values)
    if a.dtype == object or not (a.size == 0 or np.issubdtype(a.dtype, np.integer)):
        raise TypeError(
            f"{name} must be ints in [0, {n}){what}, got {a.dtype} values "
            f"{np.ravel(a)[:5].tolist()}"
        )
    bad = (a < 0) | (a >= n)
    if bad.any():
        raise ValueError(f"{name} must be in [0, {n}){what}, got {a[bad].ravel()[0]}")
    return a.astype(np.int64)


def check_seed(value: Any, name: str = "seed") -> int:
    """A seed for ``np.random.default_rng``: an int >= 0."""
    return check_count(value, name, minimum=0)


def check_generator(value: Any, name: str = "rng") -> np.random.Generator:
    """A ``numpy.random.Generator`` (e.g. ``np.random.default_rng(0)``); an int seed is refused
    with a hint, since a seed here would make every call draw the same permutations."""
    if not isinstance(value, np.random.Generator):
        raise TypeError(
            f"{name} must be a numpy.random.Generator (np.random.default_rng(seed)), got "
            f"{type(value).__name__} {value!r}"
        )
    return value


def check_weights(weights: Any) -> np.ndarray:
    """Attention weights as float64 (L, B, H, S, S): every layer's, or one layer's (B, H, S, S)
    given a layer axis of 1. ``ValueError`` for another shape or a weight that is inf or NaN."""
    A = np.asarray(weights, dtype=np.float64)
    if A.ndim == 4:  # one layer (B, H, S, S)
        A = A[None]
    if A.ndim != 5 or A.shape[-1] != A.shape[-2]:
        raise ValueError(
            f"weights must have shape (L, B, H, S, S) or (B, H, S, S), got {np.shape(weights)}"
        )
    if not np.isfinite(A).all():
        raise ValueError("weights must be finite attention weights, got nan or inf")
    return A


def check_rows(name: str, value: Any, shape: tuple[int, int]) -> np.ndarray:
    """``value`` (a mask or ids) as an array of shape (B, S) = ``shape``; an (S,) value is one
    row. ``ValueError`` naming ``name`` for another shape."""
    a = np.asarray(value)
    if a.ndim == 1:
        a = a[None]
    if a.shape != shape:
        raise ValueError(f"{name} must have shape (B, S) = {shape}, got {np.shape(value)}")
    return a
