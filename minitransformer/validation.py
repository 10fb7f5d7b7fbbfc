"""Checks on what users pass in, with messages that name the argument and what was wrong.

A teaching library must never compute something silently wrong from a malformed input:
every check here raises ``TypeError`` (wrong kind of value) or ``ValueError`` (right kind,
wrong shape or range) naming the argument, what was expected and what was received.
Numbers that came out infinite or NaN raise :class:`NonFiniteError`, a ``ValueError``.

Two kinds of check, used by every module that takes input from a user:

* scalars -- :func:`check_int`, :func:`check_number`, :func:`check_bool`,
  :func:`check_option`, :func:`check_generator`, :func:`check_names`: each returns the value
  as a plain Python object (a NumPy scalar such as ``np.int64(3)`` becomes ``3``);
* arrays -- :func:`as_array` explains what NumPy refuses with its own words (ragged rows,
  integers too large for 64 bits); :func:`check_finite` names the array holding inf or NaN;
  :func:`check_ids_in_range` the first id out of range.

The model's own inputs (token ids, padding mask, token types, head mask) are checked in
:mod:`minitransformer.inputs`, with these.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np


class NonFiniteError(ValueError):
    """An input or a computed value holds inf or NaN where a finite number is needed."""


# ----------------------------------------------------------------------------- scalars


def _bounds(minimum: float | None, maximum: float | None, open_min: bool, open_max: bool) -> str:
    """Words for an interval: ``"positive"``, ``">= 0"``, ``"in [0, 1)"``."""
    if maximum is None:
        if minimum == 0 and open_min:
            return "positive"
        return f"{'>' if open_min else '>='} {minimum:g}"
    if minimum is None:
        return f"{'<' if open_max else '<='} {maximum:g}"
    return f"in {'(' if open_min else '['}{minimum:g}, {maximum:g}{')' if open_max else ']'}"


def _outside(
    value: float, minimum: float | None, maximum: float | None, open_min: bool, open_max: bool
) -> bool:
    if minimum is not None and (value <= minimum if open_min else value < minimum):
        return True
    return maximum is not None and (value >= maximum if open_max else value > maximum)


def _kind(value: object) -> str:
    """``"float 2.0"``: the type and the value, for a message."""
    return f"{type(value).__name__} {value!r}"


def check_int(name: str, value: Any, minimum: int | None = None, maximum: int | None = None) -> int:
    """``value`` as a Python int in ``[minimum, maximum]`` (either bound may be None).

    NumPy integers are accepted; bools and floats (even ``2.0``) are not.
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {_kind(value)}")
    number = int(value)
    if _outside(number, minimum, maximum, False, False):
        if minimum == 1 and maximum is None:
            raise ValueError(f"{name} must be a positive int, got {number}")
        raise ValueError(
            f"{name} must be an int {_bounds(minimum, maximum, False, False)}, got {number}"
        )
    return number


def check_number(
    name: str,
    value: Any,
    minimum: float | None = None,
    maximum: float | None = None,
    *,
    open_min: bool = False,
    open_max: bool = False,
) -> float:
    """``value`` as a finite Python float between ``minimum`` and ``maximum``.

    ``open_min`` / ``open_max`` exclude the bound itself (``minimum=0, open_min=True``:
    positive). NumPy scalars and ints are accepted; bools, strings and arrays are not, and
    neither are inf and NaN.
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)):
        raise TypeError(f"{name} must be a number, got {_kind(value)}")
    if isinstance(value, (complex, np.complexfloating)):
        raise TypeError(f"{name} must be a real number, got {_kind(value)}")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{name} must be a finite number, got {number}")
    if _outside(number, minimum, maximum, open_min, open_max):
        bounds = _bounds(minimum, maximum, open_min, open_max)
        article = f"a {bounds} number" if bounds == "positive" else f"a number {bounds}"
        raise ValueError(f"{name} must be {article}, got {value!r}")
    return number


def check_bool(name: str, value: Any) -> bool:
    """``value`` as a Python bool (``np.bool_`` accepted; 0, 1 and strings are not)."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {value!r}")
    return bool(value)


def check_option(name: str, value: Any, options: Sequence[str]) -> str:
    """``value`` as a str, which must be one of ``options``."""
    if not isinstance(value, str) or value not in options:
        got = repr(value) if isinstance(value, str) else _kind(value)
        raise ValueError(f"{name} must be one of {list(options)}, got {got}")
    return str(value)


def check_generator(name: str, rng: Any) -> np.random.Generator | None:
    """None or a ``numpy.random.Generator`` (a seed is not one: the message says how to make it)."""
    if rng is not None and not isinstance(rng, np.random.Generator):
        raise TypeError(
            f"{name} must be a numpy.random.Generator such as np.random.default_rng(0), "
            f"or None, got {_kind(rng)}"
        )
    return rng


def check_names(name: str, names: Any) -> str | list[str]:
    """A name or glob pattern, or an iterable of them, as a str or a list of str."""
    if isinstance(names, str):
        return names
    if not isinstance(names, Iterable):
        raise TypeError(
            f"{name} must be a name, a glob pattern or a list of them, got {_kind(names)}"
        )
    listed = list(names)
    wrong = [n for n in listed if not isinstance(n, str)]
    if wrong:
        raise TypeError(f"{name} must hold names or glob patterns (str), got {_kind(wrong[0])}")
    if not listed:
        raise ValueError(f"{name} must hold at least one name or glob pattern, got none")
    return listed


# ------------------------------------------------------------------------------ arrays


def _is_row(value: object) -> bool:
    return isinstance(value, (list, tuple, np.ndarray))


def _count(n: int | None, unit: str) -> str:
    """``"3 ids"``, ``"1 id"``; None (not a row) is ``"a single value"``."""
    if n is None:
        return "a single value, not a row"
    return f"{n} {unit}" if n != 1 else f"1 {unit.removesuffix('s')}"


def _ragged(value: Any, unit: str, path: tuple[int, ...] = ()) -> str | None:
    """Where nested rows first differ in length (``"row 1 has 3 ids, row 0 has 4 ids"``), or
    None. ``path`` is the index of ``value`` in the whole input."""
    if len(path) > 64:  # NumPy's most dimensions; a hostile nesting stops here
        return "the rows are nested deeper than 64 levels"
    rows = list(value)
    lengths = [len(row) if _is_row(row) else None for row in rows]
    for i, n in enumerate(lengths):
        if n != lengths[0]:
            this, first = (i, 0) if not path else (path + (i,), path + (0,))
            return f"row {this} has {_count(n, unit)}, row {first} has {_count(lengths[0], unit)}"
    for i, row in enumerate(rows):
        inner = _ragged(row, unit, path + (i,)) if _is_row(row) else None
        if inner is not None:
            return inner
    return None


def as_array(value: Any, name: str, unit: str = "values", expected: str = "") -> np.ndarray:
    """``np.asarray(value)``, with what NumPy refuses explained in the terms of ``name``.

    Nested lists of unequal lengths give ``"token_ids must be rectangular (rows of equal
    length): row 1 has 3 ids, row 0 has 4 ids"``; a Python int too large for 64 bits gives
    ``"token_ids must be {expected}, got 10**30 at index (0, 2)"``; any other non-number names
    its place.

    Parameters
    ----------
    value : array-like
    name : str
        The argument, for messages.
    unit : str
        What a row holds, plural (``"ids"``), for the ragged-row message.
    expected : str
        What the values must be (``"in [0, 10) (vocab_size)"``), for the message about an
        integer too large; default: "integers that fit in 64 bits".

    Returns
    -------
    ndarray (of any dtype but ``object``)
    """
    if isinstance(value, np.ndarray) and value.dtype != object:
        return value
    try:
        array = np.asarray(value)
    except ValueError:  # NumPy refuses nested lists of unequal lengths
        array = None
    if array is not None and array.dtype != object:
        return array
    if _is_row(value) and len(value) > 0:
        where = _ragged(value, unit)
        if where is not None:
            raise ValueError(f"{name} must be rectangular (rows of equal length): {where}")
    if array is None:
        raise ValueError(f"{name} must be a rectangular array of numbers, got {_kind(value)}")
    for index, item in np.ndenumerate(array):
        if isinstance(item, int) and not -(2**63) <= item < 2**64:
            text = str(item) if item.bit_length() <= 200 else _digits(item)
            must = expected or "integers that fit in 64 bits"
            raise ValueError(f"{name} must be {must}, got {text} at index {index}")
        if not isinstance(item, (int, float, np.number)):
            raise TypeError(f"{name} must hold numbers, got {_kind(item)} at index {index}")
    return np.asarray(array.tolist())  # numbers held as Python objects: convert them


def _digits(n: int) -> str:
    """``"an integer of about 5000 digits"`` (``str`` of a huge int is slow, even refused)."""
    sign = "a negative" if n < 0 else "an"
    return f"{sign} integer of about {int(n.bit_length() * math.log10(2)) + 1} digits"


def check_finite(name: str, array: np.ndarray, hint: str = "") -> None:
    """Raise :class:`NonFiniteError` if ``array`` holds inf or NaN, counting them."""
    finite = np.isfinite(array)
    if not finite.all():
        bad = int(finite.size - np.count_nonzero(finite))
        first = tuple(int(i) for i in np.argwhere(~finite)[0])
        raise NonFiniteError(
            f"{name} contains {bad} NaN or infinite value(s) (the first at index {first})"
            + (f": {hint}" if hint else "")
        )


def check_ids_in_range(name: str, ids: np.ndarray, size: int, size_name: str) -> None:
    """Raise ``ValueError`` naming the first id of ``ids`` outside ``[0, size)`` (``size_name``:
    what the size is, e.g. ``"vocab_size"``)."""
    bad = (ids < 0) | (ids >= size)
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(
            f"{name} must be in [0, {size}) ({size_name}), got {int(ids[where])} at index {where}"
        )
