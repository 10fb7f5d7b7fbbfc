"""The step frames, the step figure and the query breakdown stay readable from 4 to 512 tokens:
every text at least 7 points, inside the figure, overlapping no other text, and the figure at
most 2400 px on its long side (at the default dpi), for a random toy model and for MiniLM
(when installed), a padded batch included."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
from conftest import make_encoder
from readability import assert_readable

from minitransformer.config import EncoderConfig
from viz.query import query_breakdown
from viz.steps import (
    attention_step_frames,
    attention_steps,
    step_panels,
)

#: Frames that stress labels and texts: X, Q Kᵀ with its histogram, + mask with the mask,
#: the weights with their row sums, W_O's band and attn.out.
CHECKED_STEPS = ("X", "QK", "masked", "weights", "W_O", "out")


def check(trace, model, tokens, layer, head, query, batch=0, steps=CHECKED_STEPS):
    keys = [p.key for p in step_panels(trace, layer, head, model, batch=batch)]
    frames = attention_step_frames(trace, layer, head, tokens, model, batch=batch)
    for key, frame in zip(keys, frames, strict=True):
        if steps is None or key in steps:
            assert_readable(frame, max_pixels=2400)
    assert_readable(
        attention_steps(trace, layer, head, tokens, model, batch=batch), max_pixels=2400
    )
    fig = query_breakdown(trace, layer, head, query, tokens, batch=batch)
    assert_readable(fig, max_pixels=2400)


@pytest.fixture(scope="module")
def toy():
    return make_encoder(EncoderConfig(n_layers=1, n_heads=4, d_model=32, max_len=512), seed=2)


@pytest.mark.parametrize("n", [4, 13, 64, 200, 512])
def test_toy_model_is_readable(toy, n):
    _, trace = toy.run_with_trace(np.arange(n)[None] % 60 + 1)
    tokens = ["[CLS]"] + [f"tok{i}" for i in range(1, n)]
    check(
        trace,
        toy,
        tokens,
        0,
        1,
        n // 2,
    )


@pytest.fixture(scope="module")
def minilm():
    from minitransformer import load_pretrained

    try:
        return load_pretrained("all-MiniLM-L6-v2")
    except (FileNotFoundError, ImportError, OSError) as error:
        pytest.skip(f"all-MiniLM-L6-v2 is not installed: {error}")


PARAGRAPH = (
    "The cat sat on the mat because it was tired. Later that evening the dog came home, looked "
    "around the quiet kitchen and lay down next to the warm stove. "
)


@pytest.mark.parametrize("case", ["sentence", "padded", "512 tokens"])
def test_minilm_is_readable(minilm, case):
    model, tokenizer = minilm
    if case == "sentence":
        batch, row = tokenizer(["The cat sat on the mat because it was tired."]), 0
    elif case == "padded":
        batch, row = tokenizer(["The cat sat on the mat because it was tired.", "A dog slept."]), 1
    else:
        batch, row = tokenizer([PARAGRAPH * 30], max_length=512), 0
    _, trace = model.run_with_trace(batch)
    tokens = batch.tokens[row]
    assert len(tokens) == {"sentence": 13, "padded": 13, "512 tokens": 512}[case]
    query = tokens.index("it") if "it" in tokens else 2
    check(
        trace, model, tokens, 2, 0, query, row, steps=None if case == "sentence" else CHECKED_STEPS
    )
