"""minitransformer: a from-scratch, pure-NumPy transformer encoder that hides nothing.

>>> from minitransformer import Encoder, EncoderConfig
>>> model = Encoder(EncoderConfig(), seed=0)
>>> hidden, trace = model.run_with_trace([[1, 2, 3, 4]])
>>> print(trace.summary())  # doctest: +SKIP
"""

from minitransformer.attention import (
    attention_scores,
    causal_mask,
    merge_heads,
    padding_mask,
    scaled_dot_product_attention,
    split_heads,
)
from minitransformer.backprop import Gradients, backward, value_and_grad
from minitransformer.config import EncoderConfig
from minitransformer.encoder import Encoder
from minitransformer.functional import (
    dropout,
    erf,
    gelu,
    gelu_tanh,
    layer_norm,
    linear,
    masked_softmax,
    normalize,
    relu,
    softmax,
)
from minitransformer.params import param_shapes
from minitransformer.positional import sinusoidal_positional_encoding
from minitransformer.trace import NAME_TABLE, Trace

__all__ = [
    "NAME_TABLE",
    "Encoder",
    "EncoderConfig",
    "Gradients",
    "Trace",
    "attention_scores",
    "backward",
    "causal_mask",
    "dropout",
    "erf",
    "gelu",
    "gelu_tanh",
    "layer_norm",
    "linear",
    "masked_softmax",
    "merge_heads",
    "normalize",
    "padding_mask",
    "param_shapes",
    "relu",
    "scaled_dot_product_attention",
    "sinusoidal_positional_encoding",
    "softmax",
    "split_heads",
    "value_and_grad",
]

__version__ = "0.1.0"
