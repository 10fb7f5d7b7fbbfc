"""The encoder's parameters: a plain ``dict[str, np.ndarray]`` under documented names.

Weights are stored (d_in, d_out) and applied as ``x @ W + b``; head h of ``W_Q``, ``W_K``,
``W_V`` is the block of columns ``h*Dh : (h+1)*Dh``, and of ``W_O`` the block of rows.

=============================  =============  ===============================================
name                           shape          meaning
=============================  =============  ===============================================
``embed.W_E``                  (V, D)         token embedding, one row per vocabulary entry
``embed.W_pos``                (max_len, D)   learned position embedding (``positional="learned"``)
``embed.W_type``               (T, D)         token-type embedding (``type_vocab_size > 0``)
``embed.ln.gamma`` / ``beta``  (D,)           embedding LayerNorm (``embed_layer_norm``)
``blocks.{l}.attn.W_Q`` ...    (D, D)         query, key, value projections ``W_Q, W_K, W_V``
``blocks.{l}.attn.b_Q`` ...    (D,)           their biases ``b_Q, b_K, b_V``
``blocks.{l}.attn.W_O``        (D, D)         output projection of the concatenated heads
``blocks.{l}.attn.b_O``        (D,)           its bias
``blocks.{l}.ln1.gamma/beta``  (D,)           LayerNorm around attention
``blocks.{l}.ffn.W_1``, ``b_1``  (D, F), (F,)   first feed-forward layer
``blocks.{l}.ffn.W_2``, ``b_2``  (F, D), (D,)   second feed-forward layer
``blocks.{l}.ln2.gamma/beta``  (D,)           LayerNorm around the feed-forward layer
``final_ln.gamma`` / ``beta``  (D,)           final LayerNorm (``norm="pre"`` only)
=============================  =============  ===============================================
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from minitransformer.config import EncoderConfig
from minitransformer.validation import as_array, check_finite


def param_shapes(config: EncoderConfig) -> dict[str, tuple[int, ...]]:
    """Every parameter name this config needs, with its shape, in forward order."""
    D, F = config.d_model, config.d_ff
    shapes: dict[str, tuple[int, ...]] = {"embed.W_E": (config.vocab_size, D)}
    if config.positional == "learned":
        shapes["embed.W_pos"] = (config.max_len, D)
    if config.type_vocab_size > 0:
        shapes["embed.W_type"] = (config.type_vocab_size, D)
    if config.embed_layer_norm:
        shapes["embed.ln.gamma"] = (D,)
        shapes["embed.ln.beta"] = (D,)
    for l in range(config.n_layers):
        b = f"blocks.{l}"
        for name in ("Q", "K", "V", "O"):
            shapes[f"{b}.attn.W_{name}"] = (D, D)
            shapes[f"{b}.attn.b_{name}"] = (D,)
        shapes[f"{b}.ln1.gamma"] = (D,)
        shapes[f"{b}.ln1.beta"] = (D,)
        shapes[f"{b}.ffn.W_1"] = (D, F)
        shapes[f"{b}.ffn.b_1"] = (F,)
        shapes[f"{b}.ffn.W_2"] = (F, D)
        shapes[f"{b}.ffn.b_2"] = (D,)
        shapes[f"{b}.ln2.gamma"] = (D,)
        shapes[f"{b}.ln2.beta"] = (D,)
    if config.norm == "pre":
        shapes["final_ln.gamma"] = (D,)
        shapes["final_ln.beta"] = (D,)
    return shapes


def init_params(config: EncoderConfig, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Random initial parameters.

    Projection weights ~ N(0, 1/d_in) (so activations keep roughly unit scale), embeddings
    ~ N(0, 1), biases 0, LayerNorm gains 1 and shifts 0.

    Returns
    -------
    dict mapping each name of :func:`param_shapes` to an array of ``config.dtype``.
    """
    params: dict[str, np.ndarray] = {}
    for name, shape in param_shapes(config).items():
        leaf = name.rsplit(".", 1)[-1]
        if leaf == "gamma":
            value = np.ones(shape)
        elif leaf == "beta" or leaf.startswith("b_"):
            value = np.zeros(shape)
        elif name.startswith("embed."):
            value = rng.standard_normal(shape)
        else:
            value = rng.standard_normal(shape) / np.sqrt(shape[0])
        params[name] = value.astype(config.dtype)
    return params


def validate_params(
    config: EncoderConfig, params: Mapping[str, Any], source: str = "params"
) -> dict[str, np.ndarray]:
    """Check that ``params`` has exactly the names and shapes ``config`` needs, all finite.

    Finiteness is checked *after* the conversion to ``config.dtype``: a float64 1e300 is
    finite, but becomes inf in float32.

    Parameters
    ----------
    config : EncoderConfig
    params : dict of name -> ndarray
    source : str
        Where the parameters came from (a file name), quoted in error messages.

    Returns
    -------
    dict of name -> ndarray of ``config.dtype``, in forward order: new arrays, so that
    training the model never changes the caller's.

    Raises
    ------
    ValueError
        Naming the tensor: missing, unexpected, of the wrong shape, or containing NaN/inf
        (:class:`~minitransformer.validation.NonFiniteError`).
    TypeError
        Naming the tensor that is not a floating-point array.
    """
    if not isinstance(params, Mapping):
        raise TypeError(f"{source} must be a dict of name -> array, got {type(params).__name__}")
    expected = param_shapes(config)
    missing = [name for name in expected if name not in params]
    if missing:
        raise ValueError(f"{source}: missing parameter(s) {missing}")
    unexpected = sorted(set(params) - set(expected), key=str)
    if unexpected:
        raise ValueError(f"{source}: unexpected parameter(s) {unexpected} for this config")
    checked: dict[str, np.ndarray] = {}
    for name, shape in expected.items():
        label = f"{source}: parameter {name!r}"
        value = as_array(params[name], label)
        if not np.issubdtype(value.dtype, np.floating):
            raise TypeError(f"{label} must be floating point, got {value.dtype}")
        if value.shape != shape:
            raise ValueError(f"{label} has shape {value.shape}, expected {shape}")
        with np.errstate(over="ignore"):  # an overflow to inf is reported just below
            cast = np.array(value, dtype=config.dtype)  # a copy, never the caller's array
        if not np.isfinite(cast).all():
            largest = float(np.finfo(config.dtype).max)
            overflow = (
                f"finite in {value.dtype}, but beyond {largest:.3g}, the largest {config.dtype}"
            )
            check_finite(label, cast, overflow if np.isfinite(value).all() else "")
        checked[name] = cast
    return checked
