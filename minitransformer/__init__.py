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
from minitransformer.backprop import Gradients, backward
from minitransformer.checkpoint import load_checkpoint, save_checkpoint
from minitransformer.config import EncoderConfig
from minitransformer.encoder import Encoder
from minitransformer.experiments import compare_architectures, results_table
from minitransformer.functional import (
    dropout,
    erf,
    gelu,
    gelu_tanh,
    layer_norm,
    linear,
    masked_softmax,
    relu,
    softmax,
    standardize,
)
from minitransformer.heads import Classifier, cross_entropy
from minitransformer.optim import Adam, AdamW, clip_grad_norm, warmup_cosine_lr
from minitransformer.params import param_shapes
from minitransformer.pooling import embed_sentences, sentence_embedding
from minitransformer.positional import sinusoidal_positional_encoding
from minitransformer.pretrained import config_from_hf, load_pretrained
from minitransformer.tasks import TASKS, best_head, get_task, pattern_score
from minitransformer.tensorboard import TensorBoardLogger
from minitransformer.tokenizer import BatchEncoding, Encoding, WordPieceTokenizer
from minitransformer.toy_models import load_toy_model
from minitransformer.trace import NAME_TABLE, Trace
from minitransformer.training import (
    AttentionSnapshots,
    History,
    train,
    train_task,
    value_and_grad,
)

__all__ = [
    "Adam",
    "AdamW",
    "AttentionSnapshots",
    "BatchEncoding",
    "Classifier",
    "TensorBoardLogger",
    "Encoder",
    "EncoderConfig",
    "Encoding",
    "Gradients",
    "History",
    "NAME_TABLE",
    "TASKS",
    "Trace",
    "WordPieceTokenizer",
    "attention_scores",
    "backward",
    "best_head",
    "causal_mask",
    "clip_grad_norm",
    "compare_architectures",
    "config_from_hf",
    "cross_entropy",
    "dropout",
    "embed_sentences",
    "erf",
    "gelu",
    "gelu_tanh",
    "get_task",
    "layer_norm",
    "linear",
    "load_checkpoint",
    "load_pretrained",
    "load_toy_model",
    "masked_softmax",
    "merge_heads",
    "padding_mask",
    "param_shapes",
    "pattern_score",
    "relu",
    "results_table",
    "save_checkpoint",
    "scaled_dot_product_attention",
    "sentence_embedding",
    "sinusoidal_positional_encoding",
    "softmax",
    "split_heads",
    "standardize",
    "train",
    "train_task",
    "value_and_grad",
    "warmup_cosine_lr",
]

__version__ = "0.1.0"
