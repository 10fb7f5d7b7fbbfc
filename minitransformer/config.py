"""The encoder's configuration: every size and every architectural choice in one place.

The defaults describe a small encoder that trains in seconds on a laptop. A MiniLM-sized
encoder (the all-MiniLM-L6-v2 sentence-embedding model, a 6-layer BERT) is::

    EncoderConfig(vocab_size=30522, d_model=384, n_heads=12, n_layers=6, d_ff=1536,
                  max_len=512, positional="learned", norm="post", activation="gelu",
                  embed_layer_norm=True, type_vocab_size=2, layer_norm_eps=1e-12)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

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
        for name in ("vocab_size", "d_model", "n_heads", "n_layers", "d_ff", "max_len"):
            _check_positive_int(name, getattr(self, name))
        if not isinstance(self.type_vocab_size, int) or isinstance(self.type_vocab_size, bool):
            raise TypeError(f"type_vocab_size must be an int, got {type(self.type_vocab_size)}")
        if self.type_vocab_size < 0:
            raise ValueError(f"type_vocab_size must be >= 0, got {self.type_vocab_size}")
        if self.d_model % self.n_heads != 0:
            raise ValueError(
                f"d_model must be divisible by n_heads, got d_model={self.d_model} and "
                f"n_heads={self.n_heads} (d_model % n_heads = {self.d_model % self.n_heads})"
            )
        _check_option("positional", self.positional, POSITIONAL_OPTIONS)
        _check_option("norm", self.norm, NORM_OPTIONS)
        _check_option("activation", self.activation, ACTIVATION_OPTIONS)
        _check_option("dtype", self.dtype, DTYPE_OPTIONS)
        for name in ("embed_layer_norm", "causal", "scale_scores"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name} must be a bool, got {getattr(self, name)!r}")
        if not (isinstance(self.layer_norm_eps, (int, float)) and self.layer_norm_eps > 0):
            raise ValueError(
                f"layer_norm_eps must be a positive number, got {self.layer_norm_eps!r}"
            )
        if not (isinstance(self.dropout, (int, float)) and 0.0 <= self.dropout < 1.0):
            raise ValueError(f"dropout must be a number in [0, 1), got {self.dropout!r}")

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
    def from_dict(cls, fields: dict[str, Any]) -> EncoderConfig:
        """Make a config from a dict, rejecting unknown keys by name."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(fields) - known)
        if unknown:
            raise ValueError(f"unknown EncoderConfig field(s) {unknown}; known: {sorted(known)}")
        return cls(**fields)


def _check_positive_int(name: str, value: object) -> None:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if value <= 0:
        raise ValueError(f"{name} must be positive, got {value}")


def _check_option(name: str, value: object, options: tuple[str, ...]) -> None:
    if value not in options:
        raise ValueError(f"{name} must be one of {list(options)}, got {value!r}")
