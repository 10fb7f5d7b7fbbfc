"""Inputs shared by the figure tests: a padded batch, hostile tokens and long inputs."""

from __future__ import annotations

import functools

import numpy as np

from minitransformer import Encoder, EncoderConfig
from minitransformer.trace import Trace

#: Tokens a figure must draw literally: mathtext markup (one that mathtext cannot even parse)
#: and a lone surrogate, which no font can draw (written as its escape, ``"\\udc80"``).
HOSTILE_TOKENS = ["$x$", "a$b$c", "$\\frac{1}{$", "\udc80"]
#: What the hostile tokens look like when drawn.
HOSTILE_DRAWN = ["$x$", "a$b$c", "$\\frac{1}{$", "\\udc80"]

#: Two sequences of 8 positions: row 0 has 8 real tokens, row 1 four and four [PAD].
PADDED_IDS = np.array([[2, 5, 6, 7, 8, 9, 3, 1], [2, 5, 9, 3, 0, 0, 0, 0]])
PADDED_TOKENS = [
    ["[CLS]", "the", "cat", "sat", "on", "it", "[SEP]", "x"],
    ["[CLS]", "a", "dog", "[SEP]", "[PAD]", "[PAD]", "[PAD]", "[PAD]"],
]
REAL = 4  # real tokens of row 1


@functools.cache
def padded_trace() -> Trace:
    """A 2-layer, 4-head model on :data:`PADDED_IDS`. In row 1, half of the heads have a
    padding query whose largest weight is larger than any real query's (tests check that it
    does not set a colour scale)."""
    model = Encoder(
        EncoderConfig(n_layers=2, n_heads=4, d_model=16, d_ff=32, vocab_size=20), seed=0
    )
    _, trace = model.run_with_trace(PADDED_IDS, mask=np.arange(8)[None, :] < [[8], [REAL]])
    return trace


def padding_rules(trace: Trace, layer: int, head: int) -> tuple[float, float]:
    """(largest weight of a real query of row 1, largest weight of any query of row 1):
    the second is larger, so a figure that lets padding set its scale is caught."""
    weights = trace[f"blocks.{layer}.attn.weights"][1, head]
    real, every = float(weights[:REAL].max()), float(weights.max())
    assert every > real, "this head does not test the colour scale: pick another"
    return real, every


@functools.cache
def long_trace(n_tokens: int, n_heads: int = 12, n_layers: int = 2) -> Trace:
    """A small model (d_model 2 per head) on ``n_tokens`` tokens: long inputs, quick to run."""
    config = EncoderConfig(n_layers=n_layers, n_heads=n_heads, d_model=2 * n_heads,
                           d_ff=32, vocab_size=100, max_len=max(n_tokens, 8))  # fmt: skip
    _, trace = Encoder(config, seed=0).run_with_trace(np.arange(n_tokens) % 100)
    return trace


def word_tokens(n: int) -> list[str]:
    """``n`` token labels of varying length, like real words."""
    words = ["the", "attention", "of", "a", "transformer", "reads", "every", "token", ",", "."]
    return [words[i % len(words)] for i in range(n)]
