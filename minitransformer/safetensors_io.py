"""Reading and writing the safetensors format with NumPy alone (no pickle, no extra package).

safetensors (Hugging Face, https://github.com/huggingface/safetensors) stores named tensors as
plain bytes, so loading a file can never run code, unlike PyTorch's pickle-based ``.bin``. A
file is three parts::

    [ 8 bytes ]  N, the header length: an unsigned 64-bit little-endian integer
    [ N bytes ]  the header: UTF-8 JSON, possibly padded with spaces at the end
    [ rest    ]  the data: every tensor's raw little-endian bytes, one after another

The header maps each tensor name to its dtype, shape and byte range in the data part::

    {"embeddings.word_embeddings.weight":
         {"dtype": "F32", "shape": [30522, 384], "data_offsets": [796672, 47678464]},
     "__metadata__": {"format": "pt"}}

``data_offsets = [begin, end]`` count bytes from the start of the data part. The ranges must
tile the data part exactly: no overlaps, no holes, no bytes left over. A tensor of shape
``(d_0, ..., d_k)`` and dtype of ``itemsize`` bytes occupies ``d_0 * ... * d_k * itemsize``
bytes in C (row-major) order.

Every check in :func:`read_header` raises ``ValueError`` naming the file and, where there is
one, the tensor: a truncated file, a header length past the end of the file, a header that is
not JSON (or breaks a limit of :func:`~minitransformer.file_checks.read_json`: a repeated key,
deep nesting, a huge integer), an unknown dtype, a shape NumPy cannot hold or whose size does not
match its byte range, ranges that overlap, leave holes or run past the end of the file. As the
byte ranges must lie inside the file, no tensor can claim more memory than the file's size, and
:func:`load_safetensors` reads only the byte ranges of the tensors asked for.
"""

from __future__ import annotations

import json
import math
import os
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np

from minitransformer.file_checks import read_json, short_repr

HEADER_LENGTH_BYTES = 8  # the header length is a little-endian uint64
MAX_HEADER_BYTES = 100_000_000  # the reference implementation refuses longer headers too
ALIGNMENT = 8  # the writer pads the header so that the data part starts 8-byte aligned
MAX_DIMS = 32  # NumPy 1.x holds arrays of at most 32 dimensions (NumPy 2: 64)

# dtype code in the header -> NumPy dtype of the stored bytes (always little-endian).
# BF16 (bfloat16) has no NumPy dtype: it is read as uint16 and widened to float32.
DTYPES: dict[str, np.dtype] = {
    "F64": np.dtype("<f8"),
    "F32": np.dtype("<f4"),
    "F16": np.dtype("<f2"),
    "BF16": np.dtype("<u2"),
    "I64": np.dtype("<i8"),
    "I32": np.dtype("<i4"),
    "I16": np.dtype("<i2"),
    "I8": np.dtype("i1"),
    "U64": np.dtype("<u8"),
    "U32": np.dtype("<u4"),
    "U16": np.dtype("<u2"),
    "U8": np.dtype("u1"),
    "BOOL": np.dtype("?"),
}
# NumPy dtype -> dtype code, for the writer (BF16 cannot be written: NumPy has no bfloat16).
_CODES = {dtype: code for code, dtype in DTYPES.items() if code != "BF16"}


@dataclass(frozen=True)
class TensorInfo:
    """One header entry: where a tensor's bytes are and how to read them.

    Attributes
    ----------
    dtype : str
        The dtype code, e.g. ``"F32"`` (a key of :data:`DTYPES`).
    shape : tuple of int
    begin, end : int
        The byte range ``[begin, end)`` in the data part of the file.
    """

    dtype: str
    shape: tuple[int, ...]
    begin: int
    end: int


def read_header(path: str | os.PathLike[str]) -> tuple[dict[str, TensorInfo], dict[str, str]]:
    """Read and check the header of a safetensors file, without reading the tensors.

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    tensors : dict of name -> TensorInfo
        In the order of the header.
    metadata : dict of str -> str
        The optional ``"__metadata__"`` entry (empty when absent).

    Raises
    ------
    ValueError
        Naming the file (and the tensor) for every malformed part; see the module docstring.
    """
    path = os.fspath(path)
    file_size = os.path.getsize(path)
    with open(path, "rb") as f:
        header_length, header_bytes = _read_header_bytes(path, f, file_size)
    data_size = file_size - HEADER_LENGTH_BYTES - header_length
    header = read_json(header_bytes, f"{path}: the header")
    if not isinstance(header, dict):
        raise ValueError(f"{path}: the header must be a JSON object, got {type(header).__name__}")
    metadata = _check_metadata(path, header.pop("__metadata__", {}))
    tensors = {name: _check_entry(path, name, entry) for name, entry in header.items()}
    _check_byte_ranges(path, tensors, data_size)
    return tensors, metadata


def load_safetensors(
    path: str | os.PathLike[str], names: list[str] | None = None
) -> dict[str, np.ndarray]:
    """Load the tensors of a safetensors file as NumPy arrays.

    Each tensor's byte range is read into a fresh array (so it is aligned and writable); the
    bytes of tensors not asked for are never read. BF16 tensors are widened to float32, which
    represents every bfloat16 value exactly.

    Parameters
    ----------
    path : str or path-like
    names : list of str, optional
        Load only these tensors (default: all). A name not in the file raises ``ValueError``.

    Returns
    -------
    dict of name -> ndarray
        With the shape and dtype of the header (F32 -> float32, F16 -> float16,
        BF16 -> float32, I64 -> int64, ...), in the order of the header.
    """
    path = os.fspath(path)
    tensors, _ = read_header(path)
    if names is not None:
        unknown = [name for name in names if name not in tensors]
        if unknown:
            raise ValueError(f"{path}: no tensor(s) {unknown} in the file")
        tensors = {name: tensors[name] for name in names}
    with open(path, "rb") as f:
        (header_length,) = struct.unpack("<Q", f.read(HEADER_LENGTH_BYTES))
        data_start = HEADER_LENGTH_BYTES + header_length
        loaded = {}
        for name, info in tensors.items():
            f.seek(data_start + info.begin)
            loaded[name] = _read_tensor(f, info)
    return loaded


def save_safetensors(
    path: str | os.PathLike[str],
    tensors: dict[str, np.ndarray],
    metadata: dict[str, str] | None = None,
) -> None:
    """Write NumPy arrays to a safetensors file (in the order given).

    Parameters
    ----------
    path : str or path-like
    tensors : dict of name -> ndarray
        Arrays of a dtype in :data:`DTYPES` (not bfloat16). Written in C order, little-endian.
    metadata : dict of str -> str, optional
        Free text stored under ``"__metadata__"``.
    """
    header: dict[str, Any] = {}
    if metadata is not None and not (
        isinstance(metadata, dict)
        and all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items())
    ):
        raise TypeError(f"metadata must be a dict of str -> str or None, got {metadata!r}")
    if metadata:
        header["__metadata__"] = metadata
    chunks: list[bytes] = []
    offset = 0
    for name, value in tensors.items():
        if not isinstance(name, str) or name == "__metadata__":
            raise ValueError(
                f"tensor names must be strings other than '__metadata__', got {name!r}"
            )
        array = np.asarray(value)
        little_endian = array.dtype.newbyteorder("<")
        if little_endian not in _CODES:
            raise TypeError(
                f"tensor {name!r}: dtype {array.dtype} cannot be stored; "
                f"supported: {sorted(str(d) for d in _CODES)}"
            )
        raw = np.ascontiguousarray(array, dtype=little_endian).tobytes()
        header[name] = {
            "dtype": _CODES[little_endian],
            "shape": list(array.shape),
            "data_offsets": [offset, offset + len(raw)],
        }
        chunks.append(raw)
        offset += len(raw)
    header_bytes = json.dumps(header, separators=(",", ":")).encode("utf-8")
    header_bytes += b" " * (-len(header_bytes) % ALIGNMENT)  # the data part starts aligned
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(header_bytes)))
        f.write(header_bytes)
        for raw in chunks:
            f.write(raw)


# ------------------------------------------------------------------------------- checks


def _read_header_bytes(path: str, f: Any, file_size: int) -> tuple[int, bytes]:
    """The header length N and the N header bytes, after checking both fit in the file."""
    if file_size < HEADER_LENGTH_BYTES:
        raise ValueError(
            f"{path}: the file is {file_size} bytes, too short for the "
            f"{HEADER_LENGTH_BYTES}-byte header length (truncated, or not a safetensors file)"
        )
    (header_length,) = struct.unpack("<Q", f.read(HEADER_LENGTH_BYTES))
    if header_length > min(MAX_HEADER_BYTES, file_size - HEADER_LENGTH_BYTES):
        raise ValueError(
            f"{path}: the header length is {header_length} bytes, but the file has only "
            f"{file_size - HEADER_LENGTH_BYTES} bytes after the length field (limit "
            f"{MAX_HEADER_BYTES}): the file is truncated or not a safetensors file"
        )
    return header_length, f.read(header_length)


def _check_metadata(path: str, metadata: Any) -> dict[str, str]:
    if not isinstance(metadata, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
    ):
        raise ValueError(
            f"{path}: '__metadata__' must map strings to strings, got {short_repr(metadata)}"
        )
    return metadata


def _check_entry(path: str, name: str, entry: Any) -> TensorInfo:
    """One header entry -> TensorInfo, checking its keys, dtype, shape and byte count."""
    where = f"{path}: tensor {short_repr(name)}"
    if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
        raise ValueError(
            f"{where}: the entry must have exactly the keys 'dtype', 'shape' and "
            f"'data_offsets', got {short_repr(entry)}"
        )
    dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
    if not isinstance(dtype, str) or dtype not in DTYPES:
        raise ValueError(f"{where}: unknown dtype {short_repr(dtype)}; known: {sorted(DTYPES)}")
    if not (isinstance(shape, list) and all(_is_count(d) for d in shape)):
        raise ValueError(
            f"{where}: shape must be a list of non-negative ints, got {short_repr(shape)}"
        )
    # NumPy refuses a shape with too many axes, or whose size in bytes (zeros left out, as in
    # (0, 10**30)) passes 2**63 - 1 even when the tensor is empty.
    nonzero_size = math.prod(d for d in shape if d > 0) * DTYPES[dtype].itemsize
    if len(shape) > MAX_DIMS or nonzero_size > np.iinfo(np.int64).max:
        raise ValueError(
            f"{where}: shape {short_repr(shape)} cannot be a NumPy array (at most {MAX_DIMS} axes "
            f"and 2**63 - 1 bytes, zero-length axes left out)"
        )
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(map(_is_count, offsets))):
        raise ValueError(
            f"{where}: data_offsets must be [begin, end] ints, got {short_repr(offsets)}"
        )
    begin, end = offsets
    if end < begin:
        raise ValueError(f"{where}: data_offsets {offsets} end before they begin")
    expected = math.prod(shape) * DTYPES[dtype].itemsize
    if end - begin != expected:
        raise ValueError(
            f"{where}: shape {short_repr(tuple(shape))} of {dtype} needs {expected} bytes, but "
            f"data_offsets {offsets} hold {end - begin}"
        )
    return TensorInfo(dtype, tuple(shape), begin, end)


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _check_byte_ranges(path: str, tensors: dict[str, TensorInfo], data_size: int) -> None:
    """The byte ranges, sorted by start, must tile ``[0, data_size)`` exactly."""
    position, previous = 0, None
    for name, info in sorted(tensors.items(), key=lambda item: (item[1].begin, item[1].end)):
        if info.end > data_size:
            raise ValueError(
                f"{path}: tensor {name!r} ends at byte {info.end} of the data, but the data "
                f"part has only {data_size} bytes (the file is truncated)"
            )
        if info.begin < position:
            raise ValueError(
                f"{path}: tensor {name!r} bytes [{info.begin}, {info.end}) overlap tensor "
                f"{previous!r}, which ends at byte {position}"
            )
        if info.begin > position:
            raise ValueError(
                f"{path}: bytes [{position}, {info.begin}) of the data belong to no tensor "
                f"(a hole before tensor {name!r})"
            )
        position, previous = info.end, name
    if position != data_size:
        raise ValueError(
            f"{path}: the data part has {data_size} bytes, but the tensors cover only the first "
            f"{position} (trailing bytes after tensor {previous!r})"
        )


def _read_tensor(f: Any, info: TensorInfo) -> np.ndarray:
    """The tensor whose bytes start at the position of ``f``: read, reshape, widen BF16."""
    stored = DTYPES[info.dtype]
    array = np.fromfile(f, dtype=stored, count=math.prod(info.shape)).reshape(info.shape)
    if info.dtype == "BF16":
        # bfloat16 is the top 16 bits of a float32: shift them back into place.
        return (array.astype(np.uint32) << 16).view(np.float32)
    return array.astype(stored.newbyteorder("="), copy=False)  # native order (a no-op on x86)
