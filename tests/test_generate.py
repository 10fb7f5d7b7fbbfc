"""The character-level language model and generation: the shipped text and model, the windows,
temperature and top-k, the sampling loop, the scores of notebook 13, and the decoder checks'
catalogue of wrong answers."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from minitransformer import Encoder, EncoderConfig
from minitransformer.functional import softmax
from minitransformer.generate import generate, next_token_probs
from minitransformer.heads import Classifier, cross_entropy
from minitransformer.language_model import (
    CharVocab,
    NextCharacter,
    load_char_lm,
    load_text,
    offset_score,
    repeated_passages,
    split_text,
    train_char_lm,
)
from minitransformer.testing import CheckFailed
from minitransformer.testing.decoder import check_induction_score, check_next_token_probs

TUTORIALS = Path(__file__).resolve().parent.parent / "tutorials"


def solutions() -> Any:
    if str(TUTORIALS) not in sys.path:
        sys.path.insert(0, str(TUTORIALS))
    return importlib.import_module("solutions.ex13")


# ------------------------------------------------------------------------- text and vocab


def test_the_shipped_text_is_the_cut_of_coriolanus_its_readme_describes():
    text = load_text()
    assert len(text) == 79_929 and text.startswith("First Citizen:\nBefore we proceed")
    assert text.endswith("SICINIUS:\nPeace!\n") and text.isascii()
    assert len(set(text)) == 61
    readme = (Path(load_text.__code__.co_filename).parent / "data" / "README.md").read_text()
    assert "79,929" in readme and "public domain" in readme and "d1d7aa34" in readme


def test_vocab_round_trip_and_errors_name_what_is_wrong():
    vocab = CharVocab.from_text("to be or not to be")
    assert vocab.decode(vocab.encode("not to be")) == "not to be"
    with pytest.raises(ValueError, match=r"not in the vocabulary: \['!', 'x'\]"):
        vocab.encode("tox!")
    with pytest.raises(ValueError, match=r"ids must be in \[0, 7\)"):
        vocab.decode([1, 7])
    with pytest.raises(ValueError, match="distinct"):
        CharVocab("aba")
    with pytest.raises(ValueError, match="unknown"):
        load_text("unknown")


def test_windows_are_the_text_and_their_targets_the_next_characters():
    text = load_text()
    vocab = CharVocab.from_text(text)
    train_text, val_text = split_text(text)
    assert train_text + val_text == text and len(val_text) == len(text) - int(len(text) * 0.9)
    batch = NextCharacter(train_text, vocab, seq_len=16).generate(8, seed=0)
    assert batch.token_ids.shape == batch.targets.shape == (8, 16) and batch.mask.all()
    np.testing.assert_array_equal(batch.targets[:, :-1], batch.token_ids[:, 1:])
    for ids, targets in zip(batch.token_ids, batch.targets, strict=True):
        window = vocab.decode(ids) + vocab.decode(targets[-1:])
        assert window in train_text


def test_repeated_windows_say_a_passage_twice():
    vocab = CharVocab.from_text(load_text())
    batch = NextCharacter(load_text(), vocab, 16, repeat_fraction=1.0).generate(4, seed=0)
    np.testing.assert_array_equal(batch.token_ids[:, 8:], batch.token_ids[:, :8])
    np.testing.assert_array_equal(batch.targets[:, :-1], batch.token_ids[:, 1:])
    with pytest.raises(ValueError, match="repeat_fraction"):
        NextCharacter(load_text(), vocab, 16, repeat_fraction=1.5)


# ------------------------------------------------------------------- temperature, top-k


def test_next_token_probs_temperature_and_top_k():
    z = np.array([2.0, 1.0, 0.5, 3.0])
    np.testing.assert_allclose(next_token_probs(z), softmax(z))
    np.testing.assert_allclose(next_token_probs(z, 0.5), softmax(2 * z))
    top2 = next_token_probs(z, 1.0, top_k=2)
    np.testing.assert_array_equal(top2 > 0, [True, False, False, True])
    np.testing.assert_allclose(top2[[0, 3]], softmax(z[[0, 3]]))
    sharp = next_token_probs(np.array([1e4, 0.0, 9999.0]), 1e-300)  # no overflow, no NaN
    np.testing.assert_array_equal(sharp, [1.0, 0.0, 0.0])
    ties = next_token_probs(np.array([1.0, 1.0, 0.0]), top_k=1)
    np.testing.assert_allclose(ties, [0.5, 0.5, 0.0])  # tied at the k-th value: both kept


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        ({"temperature": 0.0}, ValueError, "temperature"),
        ({"temperature": -1.0}, ValueError, "temperature"),
        ({"temperature": float("nan")}, ValueError, "temperature"),
        ({"top_k": 0}, ValueError, "top_k"),
        ({"top_k": 5}, ValueError, "top_k"),
        ({"top_k": 2.0}, TypeError, "top_k"),
    ],
)
def test_bad_sampling_arguments_are_named(kwargs, error, words):
    with pytest.raises(error, match=words):
        next_token_probs(np.zeros(4), **kwargs)


# ------------------------------------------------------------------------- generation


@pytest.fixture(scope="module")
def lm():
    return load_char_lm()


def test_the_shipped_model_is_causal_and_says_how_it_was_trained(lm):
    assert lm.model.config.causal and lm.head.n_classes == len(lm.vocab) == 61
    assert lm.vocab.chars == CharVocab.from_text(load_text()).chars


def test_generation_is_seeded_and_continues_the_prompt(lm):
    prompt = lm.vocab.encode("MENENIUS:\n")
    a = generate(lm.model, lm.head, prompt, 40, temperature=0.8, top_k=5, seed=3)
    b = generate(lm.model, lm.head, prompt, 40, temperature=0.8, top_k=5, seed=3)
    c = generate(lm.model, lm.head, prompt, 40, temperature=0.8, top_k=5, seed=4)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert a.shape == (50,) and np.array_equal(a[:10], prompt)
    long = generate(lm.model, lm.head, prompt, 70, top_k=1)  # past max_len: the last 64 read
    assert long.shape == (80,)


def test_top_k_1_is_greedy_decoding(lm):
    prompt = lm.vocab.encode("First Citizen:\n")
    out = generate(lm.model, lm.head, prompt, 5, top_k=1, seed=0)
    for i in range(len(prompt), len(out)):
        logits = lm.head(lm.model(out[None, max(0, i - 64) : i]))[0, -1]
        assert out[i] == int(np.argmax(logits))


def test_generate_refuses_what_it_cannot_do(lm):
    encoder = Encoder(EncoderConfig(vocab_size=61, d_model=8, n_heads=2), seed=0)
    with pytest.raises(ValueError, match="causal"):
        generate(encoder, Classifier(8, 61), [1, 2], 3)
    with pytest.raises(ValueError, match="per-token logits"):
        generate(lm.model, Classifier(64, 61, pooling="mean"), [1, 2], 3)
    with pytest.raises(ValueError, match="prompt_ids"):
        generate(lm.model, lm.head, [], 3)
    with pytest.raises(ValueError, match=r"prompt_ids must be in \[0, 61\)"):
        generate(lm.model, lm.head, [1, 61], 3)
    with pytest.raises(ValueError, match="n_new"):
        generate(lm.model, lm.head, [1], -1)
    with pytest.raises(ValueError, match="temperature"):
        generate(lm.model, lm.head, [1], 3, temperature=0)


# ------------------------------------------------------- training and the heads it forms


def test_a_few_training_steps_lower_the_loss():
    lm = train_char_lm(40, seq_len=32, eval_every=10)
    assert lm.history.val_loss[-1] < lm.history.val_loss[0] - 0.1  # from about 3.3
    assert lm.model.config.causal


def test_the_shipped_model_has_a_previous_token_and_an_induction_head(lm):
    """The numbers of the module docstring and of notebook 13."""
    _, val_text = split_text(load_text())
    ids = repeated_passages(lm.vocab, val_text, 32, 32, seed=0)
    np.testing.assert_array_equal(ids[:, 32:], ids[:, :32])
    hidden, trace = lm.model.run_with_trace(ids)
    logits = lm.head(hidden)
    first = cross_entropy(logits[:, :31], ids[:, 1:32])[0]
    second = cross_entropy(logits[:, 32:-1], ids[:, 33:])[0]
    assert second < first / 3  # the second saying is read off the first
    previous = offset_score(trace["blocks.0.attn.weights"], 1).mean(axis=0)
    induction = offset_score(trace["blocks.1.attn.weights"], 31, slice(32, None)).mean(axis=0)
    assert previous.max() > 0.9 and induction.max() > 0.6
    assert offset_score(trace["blocks.0.attn.weights"], 31, slice(32, None)).max() < 0.1


def test_offset_score_reads_the_diagonal_it_names():
    w = np.zeros((2, 5, 5))
    w[0, np.arange(1, 5), np.arange(4)] = 1.0  # head 0: previous token
    w[1, np.arange(5), np.arange(5)] = 1.0  # head 1: itself
    np.testing.assert_allclose(offset_score(w, 1), [1.0, 0.0])
    np.testing.assert_allclose(offset_score(w, 1, slice(3, None)), [1.0, 0.0])
    with pytest.raises(ValueError, match="offset"):
        offset_score(w, 5)
    with pytest.raises(ValueError, match="no query"):
        offset_score(w, 2, slice(0, 2))


# ------------------------------------------------------------- the decoder checks' catalogue


def my_probs(logits, temperature=1.0, top_k=None):
    s = logits / temperature
    if top_k is not None:
        s = np.where(logits >= np.sort(logits)[-top_k], s, -np.inf)
    e = np.exp(s - s.max())
    return e / e.sum()


def make_probs(mistake=""):
    def next_token_probs(logits, temperature=1.0, top_k=None):
        s = logits * temperature if mistake == "multiply" else logits / temperature
        if mistake == "ignore_t":
            s = logits
        if top_k is not None:
            order = np.argsort(logits)
            n = top_k + (1 if mistake == "one_more" else 0)
            keep = order[:n] if mistake == "smallest" else order[-n:]
            fill = 0.0 if mistake == "zero_fill" else -np.inf
            s = np.where(np.isin(np.arange(len(s)), keep), s, fill)
            if mistake == "no_renorm":
                e = np.exp(logits / temperature - (logits / temperature).max())
                p = e / e.sum()
                return np.where(np.isin(np.arange(len(s)), keep), p, 0.0)
        e = np.exp(s) if mistake == "no_max" else np.exp(s - s.max())
        return e / e.sum()

    return next_token_probs


PROBS_MISTAKES = [
    (make_probs("multiply"), "probs_temperature_multiplied", "divide them"),
    (make_probs("ignore_t"), "probs_temperature_ignored", "changed nothing"),
    (make_probs("smallest"), "probs_top_k_smallest", "*smallest*"),
    (make_probs("one_more"), "probs_top_k_off_by_one", "kept 4 tokens instead of 3"),
    (make_probs("zero_fill"), "probs_top_k_zero_logits", "exp turns into 1"),
    (make_probs("no_renorm"), "probs_top_k_not_renormalised", "do not sum to 1"),
    (make_probs("no_max"), "not_finite", "np.exp(1000) is inf"),
    (lambda logits, temperature=1.0, top_k=None: list(my_probs(logits)), "returned_list", "NumPy"),
]


def make_induction(offset=-1, start="period", stop="end", reduce="mean", transposed=False):
    """A learner's induction score: key i + offset - period + 1... with one slip."""

    def induction_score(weights, period):
        S = len(weights)
        first = {"period": period, "zero": 0, "early": period - 1}[start]
        last = {"end": S, "second": 2 * period}[stop]
        values = []
        for i in range(first, last):
            key = i - period + 1 if offset == -1 else i - offset
            values.append(weights[key, i] if transposed else weights[i, key])
        return float(np.sum(values) if reduce == "sum" else np.mean(values))

    return induction_score


INDUCTION_MISTAKES = [
    (make_induction(offset=5), "induction_previous_occurrence", "duplicate-token head"),
    (make_induction(offset=1), "induction_previous_token", "previous-token"),
    (make_induction(transposed=True), "induction_transposed", "row and column swapped"),
    (make_induction(start="zero"), "induction_all_queries", "wraps around"),
    (make_induction(start="early"), "induction_from_period_minus_one", "one query early"),
    (make_induction(stop="second"), "induction_second_saying_only", "second saying only"),
    (make_induction(reduce="sum"), "induction_sum", "their mean"),
    (lambda weights, period: np.full(3, 0.5), "wrong_shape", "one number"),
]


@pytest.mark.parametrize(
    ("check", "wrong", "mistake", "words"),
    [(check_next_token_probs, *entry) for entry in PROBS_MISTAKES]
    + [(check_induction_score, *entry) for entry in INDUCTION_MISTAKES],
    ids=[m for _, m, _ in PROBS_MISTAKES] + [m for _, m, _ in INDUCTION_MISTAKES],
)
def test_each_decoder_mistake_fails_with_its_name(check, wrong, mistake, words):
    with pytest.raises(CheckFailed) as failure:
        check(wrong)
    assert failure.value.mistake == mistake, str(failure.value)
    assert words in str(failure.value), str(failure.value)


@pytest.mark.parametrize(
    ("check", "right"),
    [
        (check_next_token_probs, next_token_probs),
        (check_next_token_probs, my_probs),
        (check_next_token_probs, lambda *a, **k: solutions().next_token_probs(*a, **k)),
        (check_induction_score, make_induction()),
        (check_induction_score, lambda w, p: solutions().induction_score(w, p)),
        (check_induction_score, lambda w, p: float(offset_score(w, p - 1, slice(p, None)))),
    ],
)
def test_each_right_decoder_answer_passes(check, right, capsys):
    assert check(right) is True
    assert capsys.readouterr().out.startswith("✓")
