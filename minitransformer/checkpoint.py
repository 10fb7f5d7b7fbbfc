"""Saving and loading trained models as ``.npz`` files: plain arrays and JSON, never pickle.

A checkpoint is a NumPy ``.npz`` archive (a zip of ``.npy`` files) holding

=========================  ==============================================================
key                        content
=========================  ==============================================================
``meta.json``              uint8 array: UTF-8 JSON with the format name and version, the
                           :class:`EncoderConfig` as a dict, the classifier's ``n_classes``
                           and ``pooling`` (or null), and free ``metadata`` (task, seed, ...)
``encoder/{name}``         every encoder parameter, under its name from
                           :mod:`minitransformer.params` (e.g. ``encoder/blocks.0.attn.W_Q``)
``classifier/W``, ``/b``   the classification head's weights, when one was saved
=========================  ==============================================================

Loading reads the archive with ``allow_pickle=False``: a file can hold only numbers and text,
so loading a checkpoint cannot run code. The cost of refusing a bad file stays small: in order,

1. ``meta.json`` is read (at most :data:`~minitransformer.file_checks.MAX_TEXT_BYTES`, with
   :func:`~minitransformer.file_checks.read_json`'s limits) and the config it declares is
   checked against :data:`~minitransformer.file_checks.MAX_LAYERS` and
   :data:`~minitransformer.file_checks.MAX_PARAMETERS`;
2. the names of the archive's members are compared with the names the config needs, before
   anything else is decompressed;
3. each tensor's ``.npy`` header (dtype, shape) is checked against the config, and its size
   against the size the zip directory declares, before its data is read;
4. each tensor is cast to the model's dtype, then checked to be finite.

A truncated, tampered or corrupted file raises ``ValueError`` naming the file and what is wrong.

>>> import tempfile, pathlib
>>> from minitransformer.config import EncoderConfig
>>> from minitransformer.encoder import Encoder
>>> model = Encoder(EncoderConfig(vocab_size=10, d_model=8, n_heads=2))
>>> path = pathlib.Path(tempfile.mkdtemp()) / "model.npz"
>>> _ = save_checkpoint(path, model, metadata={"note": "untrained"})
>>> loaded = load_checkpoint(path)
>>> loaded.metadata, loaded.model.config == model.config
({'note': 'untrained'}, True)
"""

from __future__ import annotations

import json
import lzma
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from minitransformer.config import EncoderConfig
from minitransformer.encoder import Encoder
from minitransformer.file_checks import (
    MAX_TEXT_BYTES,
    as_model_tensor,
    check_model_size,
    read_json,
    short_repr,
)
from minitransformer.heads import POOLING_OPTIONS, Classifier
from minitransformer.params import param_shapes

FORMAT = "minitransformer-checkpoint"
VERSION = 1
META_KEY = "meta.json"
NPY = ".npy"  # np.savez stores array "name" as the zip member "name.npy"

# What the zipfile module raises on a damaged archive: a bad CRC or header (BadZipFile), a
# damaged compressed stream (zlib.error, lzma.LZMAError, EOFError, OSError), a compression
# method flipped to one it cannot read (NotImplementedError) or an "encrypted" flag
# (RuntimeError).
ZIP_ERRORS = (
    zipfile.BadZipFile,
    zlib.error,
    lzma.LZMAError,
    EOFError,
    OSError,
    NotImplementedError,
    RuntimeError,
)


@dataclass
class Checkpoint:
    """What :func:`load_checkpoint` returns.

    Attributes
    ----------
    model : Encoder
    classifier : Classifier or None
        The classification head, when the checkpoint holds one.
    metadata : dict
        The free JSON metadata saved with the model (task name, seed, accuracy, ...).
    """

    model: Encoder
    classifier: Classifier | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


def save_checkpoint(
    path: str | Path,
    model: Encoder,
    classifier: Classifier | None = None,
    metadata: dict[str, Any] | None = None,
) -> Path:
    """Write ``model`` (and optionally its classification head) to an ``.npz`` file.

    Parameters
    ----------
    path : str or Path
        The file to write, exactly as named (no ``.npz`` is appended).
    model : Encoder
    classifier : Classifier, optional
    metadata : dict, optional
        Anything JSON can hold: strings, numbers, lists, dicts.

    Returns
    -------
    Path
        The path written.
    """
    if not isinstance(model, Encoder):
        raise TypeError(f"model must be an Encoder, got {type(model).__name__}")
    if classifier is not None and not isinstance(classifier, Classifier):
        raise TypeError(f"classifier must be a Classifier or None, got {type(classifier).__name__}")
    if metadata is not None and not isinstance(metadata, dict):
        raise TypeError(f"metadata must be a dict or None, got {type(metadata).__name__}")
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "config": model.config.to_dict(),
        "classifier": None,
        "metadata": metadata or {},
    }
    arrays = {f"encoder/{name}": value for name, value in model.params.items()}
    if classifier is not None:
        meta["classifier"] = {"n_classes": classifier.n_classes, "pooling": classifier.pooling}
        arrays.update({f"classifier/{name}": value for name, value in classifier.params.items()})
    try:
        text = json.dumps(meta, allow_nan=False)  # NaN is not JSON: the loader would refuse it
    except (TypeError, ValueError) as err:
        raise TypeError(f"metadata must be JSON-serialisable: {err}") from None
    read_json(text.encode("utf-8"), "metadata")  # what load_checkpoint could not read back
    path = Path(path)
    with open(path, "wb") as file:  # a file object: np.savez would append ".npz" to a name
        arrays[META_KEY] = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
        np.savez(file, allow_pickle=False, **arrays)
    return path


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Read a file written by :func:`save_checkpoint`.

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    Checkpoint
        With ``model``, ``classifier`` (or None) and ``metadata``.

    Raises
    ------
    FileNotFoundError
        If there is no such file.
    ValueError
        Naming the file and the problem: not a zip archive (e.g. truncated), a corrupted
        archive, no or invalid ``meta.json``, a config larger than the loader's limits, a
        missing, unexpected, misshapen or non-finite tensor.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint file at {path}")
    if not zipfile.is_zipfile(path):
        raise ValueError(
            f"{path} is not a checkpoint: not an .npz (zip) archive (truncated or another format?)"
        )
    try:
        archive = zipfile.ZipFile(path)
    except ZIP_ERRORS as err:
        raise _corrupted(path, err) from None
    with archive:
        members = _members(path, archive)
        meta = _read_meta(path, archive, members)
        config, head = _config_and_head(path, meta)
        shapes = _expected_shapes(config, head)
        _compare_names(path, set(shapes), set(members) - {META_KEY})
        arrays = {
            key: as_model_tensor(
                _read_array(path, archive, members[key], key, shape), config.dtype, str(path), key
            )
            for key, shape in shapes.items()
        }
    prefix = len("encoder/")
    params = {key[prefix:]: value for key, value in arrays.items() if key.startswith("encoder/")}
    model = Encoder(config, params=params)
    classifier = None
    if head is not None:
        n_classes, pooling = head
        classifier = Classifier(
            config.d_model,
            n_classes,
            pooling,
            dtype=config.dtype,
            params={"W": arrays["classifier/W"], "b": arrays["classifier/b"]},
        )
    return Checkpoint(model, classifier, meta["metadata"])


def _corrupted(path: Path, err: BaseException, member: str | None = None) -> ValueError:
    part = "the zip archive" if member is None else f"member {member!r}"
    return ValueError(
        f"{path}: corrupted file: {part} cannot be read ({type(err).__name__}: {err})"
    )


def _members(path: Path, archive: zipfile.ZipFile) -> dict[str, zipfile.ZipInfo]:
    """The archive's members by array name (``"encoder/embed.W_E"``), from the zip directory
    alone: nothing is decompressed."""
    members: dict[str, zipfile.ZipInfo] = {}
    for info in archive.infolist():
        if not info.filename.endswith(NPY):
            raise ValueError(f"{path}: unexpected member {info.filename!r} (not a .npy array)")
        key = info.filename[: -len(NPY)]
        if key in members:
            raise ValueError(f"{path}: the member {info.filename!r} appears twice")
        members[key] = info
    return members


def _read_meta(
    path: Path, archive: zipfile.ZipFile, members: dict[str, zipfile.ZipInfo]
) -> dict[str, Any]:
    """``meta.json``, read and checked: format, version and the type of every entry."""
    if META_KEY not in members:
        raise ValueError(f"{path}: missing {META_KEY!r}; not a minitransformer checkpoint")
    raw = _read_array(path, archive, members[META_KEY], META_KEY, None)
    meta = read_json(raw.tobytes(), f"{path}: {META_KEY!r}")
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"{path}: {META_KEY!r} does not describe a {FORMAT} file")
    if meta.get("version") != VERSION or isinstance(meta.get("version"), bool):
        raise ValueError(f"{path}: checkpoint version {meta.get('version')!r}, expected {VERSION}")
    expected_types = {"config": (dict,), "classifier": (dict, type(None)), "metadata": (dict,)}
    for key, types in expected_types.items():
        if key not in meta:
            raise ValueError(f"{path}: {META_KEY!r} has no {key!r} entry")
        if not isinstance(meta[key], types):
            wanted = " or ".join("null" if t is type(None) else "an object" for t in types)
            raise ValueError(
                f"{path}: {META_KEY!r} entry {key!r} must be {wanted}, got "
                f"{type(meta[key]).__name__} {short_repr(meta[key])}"
            )
    return meta


def _config_and_head(
    path: Path, meta: dict[str, Any]
) -> tuple[EncoderConfig, tuple[int, str] | None]:
    """The config and the classifier's ``(n_classes, pooling)`` (or None) of ``meta.json``,
    checked against the loader's size limits."""
    try:
        config = EncoderConfig.from_dict(meta["config"])
    except (TypeError, ValueError) as err:
        raise ValueError(f"{path}: invalid config in {META_KEY}: {err}") from None
    head = None
    if meta["classifier"] is not None:
        entry = meta["classifier"]
        n_classes, pooling = entry.get("n_classes"), entry.get("pooling")
        if set(entry) != {"n_classes", "pooling"}:
            raise ValueError(
                f"{path}: {META_KEY!r} entry 'classifier' must have the keys 'n_classes' and "
                f"'pooling', got {sorted(entry)}"
            )
        if not isinstance(n_classes, int) or isinstance(n_classes, bool) or n_classes < 1:
            raise ValueError(
                f"{path}: invalid classifier: n_classes must be a positive int, got "
                f"{short_repr(n_classes)}"
            )
        if pooling not in POOLING_OPTIONS:
            raise ValueError(
                f"{path}: invalid classifier: pooling must be one of {list(POOLING_OPTIONS)}, "
                f"got {short_repr(pooling)}"
            )
        head = (n_classes, pooling)
    head_size = 0 if head is None else (config.d_model + 1) * head[0]  # W (D, C) and b (C,)
    check_model_size(config, str(path), extra_parameters=head_size)
    return config, head


def _expected_shapes(
    config: EncoderConfig, head: tuple[int, str] | None
) -> dict[str, tuple[int, ...]]:
    """Every array name the checkpoint must hold (but ``meta.json``), with its shape."""
    shapes = {f"encoder/{name}": shape for name, shape in param_shapes(config).items()}
    if head is not None:
        shapes["classifier/W"] = (config.d_model, head[0])
        shapes["classifier/b"] = (head[0],)
    return shapes


def _compare_names(path: Path, expected: set[str], found: set[str]) -> None:
    missing, unexpected = sorted(expected - found), sorted(found - expected)
    if missing:
        raise ValueError(f"{path}: missing tensor(s) {short_repr(missing)}")
    if unexpected:
        raise ValueError(
            f"{path}: unexpected array(s) {short_repr(unexpected)}: not part of the config and "
            f"classifier that {META_KEY} declares"
        )


def _read_array(
    path: Path,
    archive: zipfile.ZipFile,
    info: zipfile.ZipInfo,
    key: str,
    shape: tuple[int, ...] | None,
) -> np.ndarray:
    """One member, read only after its ``.npy`` header (dtype and shape) is checked against
    ``shape`` (None: ``meta.json``, 1-D uint8) and against the size the zip directory declares.
    """
    where = f"{path}: {key!r}" if key == META_KEY else f"{path}: tensor {key!r}"
    try:
        with archive.open(info) as member:
            try:
                version = np.lib.format.read_magic(member)
                if version not in ((1, 0), (2, 0)):
                    raise ValueError(f".npy format version {version} (1.0 or 2.0 expected)")
                read_header = (
                    np.lib.format.read_array_header_1_0
                    if version == (1, 0)
                    else np.lib.format.read_array_header_2_0
                )
                stored_shape, _, dtype = read_header(member)
            except ValueError as err:
                raise ValueError(f"{where} is not a valid .npy array ({err})") from None
            header_size = member.tell()
            if shape is None:
                _check_meta_header(where, stored_shape, dtype)
            else:
                _check_tensor_header(where, stored_shape, dtype, shape)
            declared = header_size + int(np.prod(stored_shape)) * dtype.itemsize
            if info.file_size != declared:
                raise ValueError(
                    f"{where}: corrupted file: the zip directory declares {info.file_size} "
                    f"bytes, the .npy header {declared}"
                )
            member.seek(0)  # let NumPy read the header again, then the data
            try:
                return np.lib.format.read_array(member, allow_pickle=False)
            except ValueError as err:  # fewer bytes than the header promises
                raise ValueError(f"{where}: corrupted file ({err})") from None
    except ZIP_ERRORS as err:
        raise _corrupted(path, err, info.filename) from None


def _check_meta_header(where: str, shape: tuple[int, ...], dtype: np.dtype) -> None:
    if dtype != np.uint8 or len(shape) != 1:
        raise ValueError(f"{where} must be a 1-D uint8 array, got {dtype} of shape {shape}")
    if shape[0] > MAX_TEXT_BYTES:
        raise ValueError(
            f"{where} is {shape[0]:,} bytes long, more than MAX_TEXT_BYTES = "
            f"{MAX_TEXT_BYTES:,} a loader reads"
        )


def _check_tensor_header(
    where: str, shape: tuple[int, ...], dtype: np.dtype, expected: tuple[int, ...]
) -> None:
    if dtype.hasobject or not np.issubdtype(dtype, np.floating):
        raise ValueError(f"{where} must hold floating-point numbers, got dtype {dtype}")
    if shape != expected:
        raise ValueError(f"{where} has shape {short_repr(shape)}, expected {expected}")
