"""The encoder's configuration: every size and every architectural choice in one place.

The defaults describe a small encoder that trains in seconds on a laptop. A MiniLM-sized
encoder (the all-MiniLM-L6-v2 sentence-embedding model, a 6-layer BERT) is::

    EncoderConfig(vocab_size=30522, d_model=384, n_heads=12, n_layers=6, d_ff=1536,
                  max_len=512, positional="learned", norm="post", activation="gelu",
                  embed_layer_norm=True, type_vocab_size=2, layer_norm_eps=1e-12)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from minitransformer.validation import check_bool, check_int, check_number, check_option

POSITIONAL_OPTIONS = ("sinusoidal", "learned", "none")
NORM_OPTIONS = ("post", "pre")
ACTIVATION_OPTIONS = ("relu", "gelu", "gelu_tanh")
DTYPE_OPTIONS = ("float32", "float64")


@dataclass(frozen=True)
class EncoderConfig:
    """Sizes and options of a transformer encoder (Vaswani et al. 2017; BERT, Devlin et al. 2019).

    Every field is checked when the config is made; a bad value raises ``ValueError``
    (or ``TypeError`` for a value of the wrong type) naming the field.
    """

    vocab_size: int = 64  # number of token ids; embedding matrix W_E is (vocab_size, d_model)
    d_model: int = 32  # width of the residual stream
    n_heads: int = 4  # d_model must divide evenly into heads: d_head = d_model // n_heads
    n_layers: int = 2  # number of encoder blocks
    d_ff: int = 64  # hidden width of the feed-forward layer (the paper uses 4 * d_model)
    max_len: int = 64  # longest sequence the positional encoding / embedding covers
    positional: str = "sinusoidal"  # "sinusoidal" (Vaswani), "learned" (BERT) or "none"
    norm: str = "post"  # "post": LayerNorm after each residual add (Vaswani, BERT); "pre": before
    activation: str = "relu"  # "relu" (Vaswani), "gelu" (exact, erf; BERT) or "gelu_tanh" (GPT-2)
    embed_layer_norm: bool = False  # BERT applies a LayerNorm to the summed embeddings
    type_vocab_size: int = 0  # BERT's token-type (segment) embeddings; 0 = none
    layer_norm_eps: float = 1e-5  # added to the variance inside the square root (BERT: 1e-12)
    dropout: float = 0.0  # dropout probability, used only when the forward pass is training
    causal: bool = False  # True: each query sees only keys at its own or earlier positions
    scale_scores: bool = True  # divide q.k by sqrt(d_head) (Vaswani); False: raw dot products
    dtype: str = "float32"  # "float32" (default) or "float64" (gradient checks)

    def __post_init__(self) -> None:
        # Each field is checked and stored as a plain Python value (np.int64(32) -> 32,
        # np.dtype("float32") -> "float32"), so to_dict() is JSON-safe. A frozen dataclass
        # refuses `self.x = ...`; object.__setattr__ is the documented way round it here.
        def store(name: str, value: object) -> None:
            object.__setattr__(self, name, value)

        for name in ("vocab_size", "d_model", "n_heads", "n_layers", "d_ff", "max_len"):
            store(name, check_int(name, getattr(self, name), minimum=1))
        store("type_vocab_size", check_int("type_vocab_size", self.type_vocab_size, minimum=0))
        if self.d_model % self.n_heads != 0:
            raise ValueError(
                f"d_model must be divisible by n_heads, got d_model={self.d_model} and "
                f"n_heads={self.n_heads} (d_model % n_heads = {self.d_model % self.n_heads})"
            )
        store("positional", check_option("positional", self.positional, POSITIONAL_OPTIONS))
        store("norm", check_option("norm", self.norm, NORM_OPTIONS))
        store("activation", check_option("activation", self.activation, ACTIVATION_OPTIONS))
        dtype = self.dtype
        if isinstance(dtype, np.dtype) or (
            isinstance(dtype, type) and issubclass(dtype, np.generic)
        ):
            dtype = np.dtype(dtype).name  # np.dtype("float32") or np.float32 -> "float32"
        store("dtype", check_option("dtype", dtype, DTYPE_OPTIONS))
        for name in ("embed_layer_norm", "causal", "scale_scores"):
            store(name, check_bool(name, getattr(self, name)))
        store("layer_norm_eps", _check_eps(self.layer_norm_eps, self.dtype))
        store("dropout", check_number("dropout", self.dropout, 0.0, 1.0, open_max=True))

    @property
    def d_head(self) -> int:
        """Width of one attention head: ``d_model // n_heads``."""
        return self.d_model // self.n_heads

    @property
    def np_dtype(self) -> np.dtype:
        """The NumPy dtype of parameters and activations."""
        return np.dtype(self.dtype)

    def to_dict(self) -> dict[str, Any]:
        """The fields as a plain dict (JSON-serialisable)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, fields: Mapping[str, Any]) -> EncoderConfig:
        """Make a config from a dict, rejecting unknown keys by name."""
        if not isinstance(fields, Mapping):
            raise TypeError(
                f"EncoderConfig.from_dict needs a dict of fields, got {type(fields).__name__}"
            )
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(fields) - known, key=str)
        if unknown:
            hint = ""
            if set(unknown) & HF_FIELD_NAMES:
                hint = " (a Hugging Face config.json? read it with config_from_hf)"
            raise ValueError(
                f"unknown EncoderConfig field(s) {unknown}{hint}; known: {sorted(known)}"
            )
        return cls(**fields)


#: Names of a Hugging Face BERT ``config.json``, recognised in :meth:`EncoderConfig.from_dict`'s
#: message.
HF_FIELD_NAMES = {
    "hidden_size", "num_attention_heads", "num_hidden_layers", "intermediate_size",
    "hidden_act", "max_position_embeddings", "hidden_dropout_prob",
}  # fmt: skip

#: The largest ``layer_norm_eps``: eps guards the division by ``sqrt(var + eps)``; an eps as
#: large as the variance itself (about 1 for normalised activations) stops LayerNorm from
#: normalising, and an infinite one makes every output 0.
MAX_LAYER_NORM_EPS = 1.0


def _check_eps(eps: Any, dtype: str) -> float:
    """``layer_norm_eps`` as a float that stays positive in ``dtype``.

    It must be finite, at most :data:`MAX_LAYER_NORM_EPS`, and at least the dtype's smallest
    normal number (1.2e-38 in float32): a smaller eps becomes 0 (or loses its precision) in
    that dtype, and ``(x - mean) / sqrt(0 + 0)`` is NaN for a constant vector.
    """
    value = check_number("layer_norm_eps", eps, 0.0, MAX_LAYER_NORM_EPS, open_min=True)
    tiny = float(np.finfo(dtype).tiny)
    if value < tiny:
        raise ValueError(
            f"layer_norm_eps must be at least {tiny:.3g}, the smallest normal {dtype} "
            f"(smaller values round to 0 or lose precision in {dtype}), got {eps!r}"
        )
    return value
