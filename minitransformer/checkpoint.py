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

Loading uses ``np.load(..., allow_pickle=False)``: a file can hold only numbers and text, so
loading a checkpoint cannot run code. Every tensor is checked against the config; a
truncated or tampered file raises ``ValueError`` naming the file and what is wrong.

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
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from minitransformer.config import EncoderConfig
from minitransformer.encoder import Encoder
from minitransformer.heads import Classifier
from minitransformer.params import validate_params

FORMAT = "minitransformer-checkpoint"
VERSION = 1
META_KEY = "meta.json"


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
        text = json.dumps(meta)
    except TypeError as err:
        raise TypeError(f"metadata must be JSON-serialisable: {err}") from None
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
        Naming the file and the problem: not a zip archive (e.g. truncated), no or invalid
        ``meta.json``, a missing, unexpected or misshapen tensor, a corrupted member.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint file at {path}")
    if not zipfile.is_zipfile(path):
        raise ValueError(
            f"{path} is not a checkpoint: not an .npz (zip) archive (truncated or another format?)"
        )
    try:
        with np.load(path, allow_pickle=False) as archive:
            meta = _read_meta(path, archive)
            encoder_arrays = _read_arrays(path, archive, "encoder/")
            classifier_arrays = _read_arrays(path, archive, "classifier/")
            unknown = [
                key
                for key in archive.files
                if key != META_KEY and not key.startswith(("encoder/", "classifier/"))
            ]
    except (zipfile.BadZipFile, OSError, EOFError) as err:
        raise ValueError(f"{path}: corrupted checkpoint archive ({err})") from None
    if unknown:
        raise ValueError(f"{path}: unexpected array(s) {unknown}")
    try:
        config = EncoderConfig.from_dict(meta["config"])
    except (TypeError, ValueError) as err:
        raise ValueError(f"{path}: invalid config in {META_KEY}: {err}") from None
    model = Encoder(config, params=_validated(path, config, encoder_arrays))
    classifier = None
    if meta["classifier"] is not None:
        head = meta["classifier"]
        for name in ("W", "b"):
            if name not in classifier_arrays:
                raise ValueError(f"{path}: missing tensor 'classifier/{name}'")
        try:
            classifier = Classifier(
                config.d_model,
                head["n_classes"],
                head["pooling"],
                dtype=config.dtype,
                params=classifier_arrays,
            )
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"{path}: invalid classifier: {err}") from None
    elif classifier_arrays:
        raise ValueError(f"{path}: classifier tensors present but meta.json declares none")
    return Checkpoint(model, classifier, dict(meta["metadata"]))


def _read_meta(path: Path, archive: Any) -> dict[str, Any]:
    if META_KEY not in archive.files:
        raise ValueError(f"{path}: missing {META_KEY!r}; not a minitransformer checkpoint")
    raw = archive[META_KEY]
    if raw.dtype != np.uint8 or raw.ndim != 1:
        raise ValueError(
            f"{path}: {META_KEY!r} must be a 1-D uint8 array, got {raw.dtype} {raw.shape}"
        )
    try:
        meta = json.loads(raw.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: {META_KEY!r} is not valid JSON ({err})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"{path}: {META_KEY!r} does not describe a {FORMAT} file")
    if meta.get("version") != VERSION:
        raise ValueError(f"{path}: checkpoint version {meta.get('version')!r}, expected {VERSION}")
    for key in ("config", "classifier", "metadata"):
        if key not in meta:
            raise ValueError(f"{path}: {META_KEY!r} has no {key!r} entry")
    return meta


def _read_arrays(path: Path, archive: Any, prefix: str) -> dict[str, np.ndarray]:
    arrays = {}
    for key in archive.files:
        if key.startswith(prefix):
            try:
                arrays[key[len(prefix) :]] = archive[key]
            except ValueError as err:  # e.g. an object array, which would need pickle
                raise ValueError(f"{path}: tensor {key!r} cannot be read ({err})") from None
    return arrays


def _validated(
    path: Path, config: EncoderConfig, arrays: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """The encoder's parameters, checked against the config; errors name the tensor."""
    try:
        return validate_params(config, arrays, source=str(path))
    except TypeError as err:
        raise ValueError(str(err)) from None
