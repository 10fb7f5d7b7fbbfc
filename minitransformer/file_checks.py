"""What every loader checks before it trusts a file: sizes, JSON, and the numbers it holds.

A model file comes from elsewhere: a download, a colleague, a stranger. Reading one must never
run code (no pickle anywhere), must cost little before a bad file is refused, and every refusal
names the file and the field or tensor at fault, with what was expected and what was found.
The loaders (:mod:`~minitransformer.checkpoint`, :mod:`~minitransformer.pretrained`,
:mod:`~minitransformer.safetensors_io`, :mod:`~minitransformer.tokenizer`) share these checks:

==================  =============  ==============================================================
limit               value          bounds
==================  =============  ==============================================================
MAX_TEXT_BYTES      100,000,000    a JSON file or ``vocab.txt`` read whole (the safetensors
                                   reference library refuses longer headers too)
MAX_JSON_DEPTH      100            nesting of ``[ ]`` and ``{ }`` (real files: fewer than 10)
MAX_INT_DIGITS      100            digits of a JSON integer (the longest in real files,
                                   ``model_max_length = int(1e30)``, has 31)
MAX_LAYERS          1,000          layers a config declares (BERT-large: 24)
MAX_PARAMETERS      1,000,000,000  numbers a config makes the model hold (BERT-large: 0.34
                                   billion; a billion float32 numbers take 4 GB)
==================  =============  ==============================================================

The sizes are checked on the config *before* any tensor is read, and a tensor's declared size
is checked against the file before it is read or decompressed: a small file that declares a
huge model is refused at once, naming the field, instead of filling the memory.
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from minitransformer.config import EncoderConfig
from minitransformer.params import param_shapes

MAX_TEXT_BYTES = 100_000_000
MAX_JSON_DEPTH = 100
MAX_INT_DIGITS = 100
MAX_LAYERS = 1_000
MAX_PARAMETERS = 1_000_000_000


# ------------------------------------------------------------------------------ JSON


def read_json(data: bytes, source: str) -> Any:
    """Parse UTF-8 JSON ``data`` with every limit checked; errors start with ``source``.

    Stricter than ``json.loads``: a key repeated in an object, ``NaN`` / ``Infinity``, a number
    too large for a float, an integer longer than :data:`MAX_INT_DIGITS` digits and nesting
    deeper than :data:`MAX_JSON_DEPTH` levels are refused, as is text over
    :data:`MAX_TEXT_BYTES` bytes.

    Parameters
    ----------
    data : bytes
    source : str
        What the bytes are (a file name, ``"file.npz: 'meta.json'"``), quoted in errors.

    Returns
    -------
    The parsed value: dict, list, str, int, float, bool or None.

    Raises
    ------
    ValueError
        ``"{source} is not valid UTF-8 JSON: {what is wrong}"``.
    """
    if len(data) > MAX_TEXT_BYTES:
        raise ValueError(
            f"{source} is {len(data):,} bytes long, more than MAX_TEXT_BYTES = "
            f"{MAX_TEXT_BYTES:,} a loader reads"
        )
    try:
        value = json.loads(
            data.decode("utf-8"),
            object_pairs_hook=_object_without_repeated_keys,
            parse_int=_bounded_int,
            parse_float=_finite_float,
            parse_constant=_no_constant,
        )
    except RecursionError:  # Python's parser recurses once per level of nesting
        raise ValueError(
            f"{source} is not valid UTF-8 JSON: nested more than MAX_JSON_DEPTH = "
            f"{MAX_JSON_DEPTH} levels deep"
        ) from None
    except ValueError as error:  # also UnicodeDecodeError and json.JSONDecodeError
        raise ValueError(f"{source} is not valid UTF-8 JSON: {error}") from None
    if _depth(value) > MAX_JSON_DEPTH:
        raise ValueError(
            f"{source} is not valid UTF-8 JSON: nested more than MAX_JSON_DEPTH = "
            f"{MAX_JSON_DEPTH} levels deep"
        )
    return value


def read_json_file(path: str | os.PathLike[str]) -> Any:
    """:func:`read_json` of a file, refused by its size before it is read."""
    return read_json(read_bytes(path), str(path))


def read_bytes(path: str | os.PathLike[str]) -> bytes:
    """The bytes of a text file, after checking it is at most :data:`MAX_TEXT_BYTES` long."""
    size = os.path.getsize(path)
    if size > MAX_TEXT_BYTES:
        raise ValueError(
            f"{path} is {size:,} bytes long, more than MAX_TEXT_BYTES = {MAX_TEXT_BYTES:,} "
            "a loader reads"
        )
    return Path(path).read_bytes()


def read_lines(path: str | os.PathLike[str]) -> list[str]:
    """The lines of a UTF-8 text file (without their ``"\\n"``); a byte that is not UTF-8
    raises ``ValueError`` naming the file and the line."""
    data = read_bytes(path)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise ValueError(
            f"{path}: line {line} is not valid UTF-8 (byte {data[error.start]:#04x} at "
            f"offset {error.start}: {error.reason})"
        ) from None
    lines = text.split("\n")
    if lines[-1] == "":  # the file ends with a newline
        lines.pop()
    return lines


def _object_without_repeated_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object as a dict; a key given twice is refused (which one counts is ambiguous)."""
    value = dict(pairs)
    if len(value) < len(pairs):
        repeated = sorted(key for key, n in Counter(key for key, _ in pairs).items() if n > 1)
        raise ValueError(f"key(s) {repeated} given more than once in one object")
    return value


def _bounded_int(digits: str) -> int:
    if len(digits.lstrip("-")) > MAX_INT_DIGITS:
        raise ValueError(
            f"an integer of {len(digits.lstrip('-'))} digits, more than MAX_INT_DIGITS = "
            f"{MAX_INT_DIGITS}"
        )
    return int(digits)


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:30]!r} is too large for a float")
    return value


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not a JSON number (JSON has no NaN or Infinity)")


def _depth(value: Any) -> int:
    """Levels of nesting of lists and dicts in ``value`` (0 for a number or a string)."""
    deepest = 0
    pending = [(value, 1)]  # (container, its depth): a loop, not recursion, to follow any depth
    while pending:
        item, depth = pending.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, depth)
            children = item.values() if isinstance(item, dict) else item
            pending.extend((child, depth + 1) for child in children)
    return deepest


def short_repr(value: Any) -> str:
    """``repr(value)`` for an error message, cut to 100 characters (a hostile file may hold a
    name or a list of millions of characters)."""
    text = repr(value)
    return text if len(text) <= 100 else text[:100] + "..."


# ------------------------------------------------------------------- sizes of a model


def check_model_size(config: EncoderConfig, source: str, extra_parameters: int = 0) -> int:
    """Refuse a config that declares more than :data:`MAX_LAYERS` layers or more than
    :data:`MAX_PARAMETERS` numbers, before anything of that size is made or read.

    Parameters
    ----------
    config : EncoderConfig
    source : str
        The file the config comes from, quoted in errors.
    extra_parameters : int
        Numbers held beside the encoder (a classification head's ``W`` and ``b``).

    Returns
    -------
    int
        The count: the encoder's parameters, the sinusoidal position table the encoder
        computes (``max_len x d_model``), and ``extra_parameters``.
    """
    if config.n_layers > MAX_LAYERS:
        raise ValueError(
            f"{source}: the config declares n_layers = {config.n_layers:,}, more than "
            f"MAX_LAYERS = {MAX_LAYERS:,} a loader accepts"
        )
    shapes = param_shapes(config)  # at most MAX_LAYERS x 16 entries: cheap
    if config.positional == "sinusoidal":
        shapes["sinusoidal position table"] = (config.max_len, config.d_model)
    count = sum(math.prod(shape) for shape in shapes.values()) + extra_parameters
    if count > MAX_PARAMETERS:
        largest = max(shapes, key=lambda name: math.prod(shapes[name]))
        raise ValueError(
            f"{source}: the config declares {count:,} parameters, more than MAX_PARAMETERS = "
            f"{MAX_PARAMETERS:,} a loader accepts (the largest: {largest!r} of shape "
            f"{shapes[largest]}, from {config})"
        )
    return count


# ------------------------------------------------------------------ tensors from a file


def as_model_tensor(value: np.ndarray, dtype: str, source: str, name: str) -> np.ndarray:
    """A tensor read from a file, cast to the model's dtype, then checked to be finite.

    The check comes *after* the cast: a float64 ``1e300`` is finite, but it becomes ``inf`` in
    float32.

    Parameters
    ----------
    value : ndarray
        As stored in the file.
    dtype : {"float32", "float64"}
        The model's dtype.
    source, name : str
        The file and the tensor's name in it, quoted in errors.

    Raises
    ------
    ValueError
        The tensor is not floating point, or holds NaN or infinite values once cast.
    """
    if not np.issubdtype(value.dtype, np.floating):
        raise ValueError(
            f"{source}: tensor {name!r} must hold floating-point numbers, got dtype {value.dtype}"
        )
    with np.errstate(over="ignore"):  # an overflow becomes inf, reported just below
        cast = value.astype(dtype, copy=False)
    finite = np.isfinite(cast)
    if not finite.all():
        bad = int(finite.size - np.count_nonzero(finite))
        too_large = bool(np.isfinite(value).all())  # finite before the cast: out of range
        reason = f"too large for {dtype}" if too_large else "NaN or infinite"
        raise ValueError(f"{source}: tensor {name!r} holds {bad} value(s) {reason}")
    return cast
