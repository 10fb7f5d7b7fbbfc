"""The diagnostics report on constructed heads: padding, sinks, uniform, duplicated, overfit."""

from __future__ import annotations

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from minitransformer.config import EncoderConfig
from minitransformer.interpret.diagnostics import (
    MIN_OVERFIT_INPUTS,
    NOISE_SIGMAS,
    DiagnosticThresholds,
    average_pattern,
    diagnose,
    excess_pattern_distance,
    flagged_heads,
)
from minitransformer.tasks import get_task
from minitransformer.toy_models import load_toy_model
from minitransformer.training import held_out, make_model, train
from tests.conftest import make_encoder

CONFIG = EncoderConfig(vocab_size=10, d_model=8, n_heads=2, n_layers=2, d_ff=12, max_len=8,
                       positional="none", dtype="float64")  # fmt: skip
D_HEAD = CONFIG.d_head


def inputs(seed: int, n: int = 24, S: int = 8, pad: int = 0) -> np.ndarray:
    """Random ids 2..8 (never 0, 1 or 9), the last ``pad`` positions padding (id 0)."""
    ids = np.random.default_rng(seed).integers(2, 9, size=(n, S))
    if pad:
        ids[:, -pad:] = 0
    return ids


def reading(token_id: int, layer: int = 0, head: int = 0, seed: int = 0):
    """A model whose head (layer, head) in block 0 puts nearly all attention on ``token_id``.

    Without positions the block-0 input is the token embedding x = W_E[id]. Give the token a
    private coordinate 0 (x_0 = 5, and 0 for every other token), let the head's key read it
    (k_0 = x_0) and its query be a constant 10 in that slot: score = 10 * x_0 / sqrt(d_head)
    = 25 for the token, 0 for the others.
    """
    model = make_encoder(CONFIG, seed)
    p, s = model.params, slice(head * D_HEAD, (head + 1) * D_HEAD)
    p["embed.W_E"][:, 0] = 0.0
    p["embed.W_E"][token_id, 0] = 5.0
    W_Q, b_Q = p[f"blocks.{layer}.attn.W_Q"], p[f"blocks.{layer}.attn.b_Q"]
    W_K, b_K = p[f"blocks.{layer}.attn.W_K"], p[f"blocks.{layer}.attn.b_K"]
    W_Q[:, s], b_Q[s], W_K[:, s], b_K[s] = 0.0, 0.0, 0.0, 0.0
    b_Q[head * D_HEAD] = 10.0
    W_K[0, head * D_HEAD] = 1.0
    return model


def test_a_head_reading_padding_is_flagged_until_the_mask_is_passed():
    model = reading(token_id=0, head=1)
    ids = inputs(0, pad=3)
    report = diagnose(model, ids, pad_id=0)  # the mask was forgotten
    assert flagged_heads(report, "padding") == [(0, 1)]
    assert report.padding[0, 1] > 0.99 and report.padding[0, 0] < 0.5
    row = next(line for line in str(report).splitlines() if "padding" in line)
    assert row.split()[:3] == ["0", "1", "padding"] and row.endswith("> 0.50")
    fixed = diagnose(model, ids, ids != 0, pad_id=0)
    assert flagged_heads(fixed, "padding") == []
    np.testing.assert_allclose(fixed.padding, 0.0, atol=1e-12)


def test_a_head_reading_the_first_token_is_a_sink():
    model = reading(token_id=1, head=0)
    ids = inputs(1)
    ids[:, 0] = 1  # [CLS]-like id 1 at position 0 only
    report = diagnose(model, ids, sink_positions=(0,))
    assert (0, 0) in flagged_heads(report, "sink")
    assert report.sink[0, 0] > 0.99
    assert (0, 0) in flagged_heads(diagnose(model, ids, sink_ids=[1], sink_positions=()), "sink")


def test_zero_queries_and_keys_make_a_near_uniform_head():
    model = make_encoder(CONFIG, seed=2)
    for name in ("W_Q", "W_K"):
        model.params[f"blocks.0.attn.{name}"] *= 4.0  # the other heads: sharp
        model.params[f"blocks.1.attn.{name}"] *= 4.0
    s = slice(D_HEAD, 2 * D_HEAD)  # head 1 of block 1: scores constant
    model.params["blocks.1.attn.W_Q"][:, s] = 0.0
    model.params["blocks.1.attn.W_K"][:, s] = 0.0
    ids = inputs(2, pad=2)
    report = diagnose(model, ids, ids != 0)
    assert flagged_heads(report, "uniform") == [(1, 1)]
    assert report.uniformity[1, 1] == pytest.approx(1.0)  # log 6 nats over 6 real keys
    assert "100% of uniform (1.79 nats)" in str(report)


def test_two_identical_heads_are_duplicates_of_each_other():
    model = make_encoder(CONFIG, seed=3)
    a, b = slice(0, D_HEAD), slice(D_HEAD, 2 * D_HEAD)
    for name in ("W_Q", "W_K"):
        model.params[f"blocks.1.attn.{name}"][:, b] = model.params[f"blocks.1.attn.{name}"][:, a]
    for name in ("b_Q", "b_K"):
        model.params[f"blocks.1.attn.{name}"][b] = model.params[f"blocks.1.attn.{name}"][a]
    report = diagnose(model, inputs(3))
    assert flagged_heads(report, "duplicate") == [(1, 0), (1, 1)]
    assert report.nearest[1, 0] == pytest.approx(0.0, abs=1e-6)
    evidence = [f.evidence for f in report.flags if f.kind == "duplicate"]
    assert evidence == ["JS distance 0.000 to L1H1", "JS distance 0.000 to L1H0"]
    loose = diagnose(model, inputs(3), thresholds=DiagnosticThresholds(duplicate=0.0))
    assert flagged_heads(loose, "duplicate") == []


def test_attention_that_changes_on_held_out_inputs_is_flagged():
    model = reading(token_id=9, head=0)  # a head keyed to a token only the training set has
    trained = inputs(4)
    trained[:, 3] = 9
    other = inputs(5, n=64)
    report = diagnose(model, trained, held_out=(other, None))
    assert report.overfit_measure == "excess JS distance"
    assert flagged_heads(report, "overfit") == [(0, 0)]
    same = diagnose(model, inputs(6), held_out=(other, None))  # same distribution
    assert flagged_heads(same, "overfit") == []
    assert np.abs(same.overfit).max() < 0.05


def test_excess_distance_is_zero_for_identical_sets_and_pads_lengths():
    A = np.random.default_rng(0).dirichlet(np.ones(4), size=(1, 6, 2, 4))  # (1, 6, 2, 4, 4)
    real = np.ones((6, 4), bool)
    P, rows = average_pattern(A, real)
    np.testing.assert_allclose(P, A.mean(axis=1))
    assert rows.all()
    longer = np.pad(A, [(0, 0)] * 3 + [(0, 2), (0, 2)])  # the same attention, 2 more columns
    excess = excess_pattern_distance(A, real, longer, np.pad(real, [(0, 0), (0, 2)]))
    assert excess.shape == (1, 2)
    assert np.all(excess <= 1e-12)  # identical sets: never farther apart than random splits


def test_overfit_flag_fires_on_a_tiny_training_set_and_not_on_the_shipped_model():
    task = get_task("reverse")
    val = held_out(task)
    tiny = task.generate(16, seed=1000)  # as training.overfitting_report does
    model, classifier = make_model(task, 0)
    train(model, classifier, tiny, steps=600, lr=task.settings.lr, progress=False)
    targets = (tiny.attention_target, val.attention_target)
    report = diagnose(model, tiny.token_ids, held_out=(val.token_ids, None), targets=targets)
    assert report.overfit_measure == "pattern drop"
    assert flagged_heads(report, "overfit") == [(0, 0)]
    shipped, _, _ = load_toy_model("reverse")
    report = diagnose(shipped, tiny.token_ids, held_out=(val.token_ids, None), targets=targets)
    assert flagged_heads(report, "overfit") == []
    assert report.flags == ()
    with pytest.raises(ValueError, match="targets need held_out"):
        diagnose(shipped, tiny.token_ids, targets=targets)


# ------------------------------------------------------- enough data for a verdict


def test_fewer_than_sixteen_inputs_per_set_give_no_overfit_verdict():
    model = reading(token_id=9, head=0)  # flagged with 24 training inputs (test above)
    for n_train, n_held in [(4, 64), (15, 64), (24, 8), (1, 1)]:
        trained = inputs(4, n=n_train)
        trained[:, 3] = 9
        report = diagnose(model, trained, held_out=(inputs(5, n=n_held), None))
        assert MIN_OVERFIT_INPUTS == 16
        assert report.overfit is None and flagged_heads(report, "overfit") == []
        note = (f"not enough data (n = {n_train} inputs + {n_held} held-out; a verdict needs at "
                f"least 16 of each)")  # fmt: skip
        assert report.overfit_note == note
        assert report.table().splitlines()[-1] == f"overfitting: {note}"
    trained = inputs(4, n=16)
    trained[:, 3] = 9
    enough = diagnose(model, trained, held_out=(inputs(5, n=16), None))
    assert enough.overfit_note == "" and flagged_heads(enough, "overfit") == [(0, 0)]
    assert diagnose(model, trained).overfit_note == "no held-out inputs"


def test_the_pattern_drop_verdict_needs_sixteen_inputs_too():
    task = get_task("reverse")
    shipped, _, _ = load_toy_model("reverse")
    few, val = task.generate(8, seed=3), held_out(task)
    targets = (few.attention_target, val.attention_target)
    report = diagnose(shipped, few.token_ids, held_out=(val.token_ids, None), targets=targets)
    assert report.overfit is None and report.overfit_note.startswith("not enough data (n = 8 ")


def minilm():
    try:
        from minitransformer.pretrained import load_pretrained

        return load_pretrained("all-MiniLM-L6-v2")
    except FileNotFoundError as error:
        pytest.skip(f"all-MiniLM-L6-v2 is not installed: {error}")


def template_sentences(seed: int, n: int) -> list[str]:
    rng = np.random.default_rng(seed)
    subjects = ["The cat", "A dog", "My neighbour", "The old teacher", "A small child", "The pilot"]
    verbs = ["saw", "found", "painted", "carried", "forgot", "described"]
    objects = ["the red car", "a letter", "the broken window", "an old map", "the garden gate"]
    tails = ["", " yesterday", " because it was late", " in the morning", " near the river"]
    return [f"{rng.choice(subjects)} {rng.choice(verbs)} {rng.choice(objects)}{rng.choice(tails)}."
            for _ in range(n)]  # fmt: skip


def test_pretrained_minilm_is_not_called_overfit_from_few_or_exchangeable_sentences():
    model, tok = minilm()
    with threadpool_limits(limits=1, user_api="blas"):
        # the gallery's 4 + 4 sentences: formerly a head was labelled "overfit" from them
        four, other = tok(GALLERY[:4]), tok(GALLERY[4:])
        report = diagnose(model, four, held_out=other, sink_positions=())
        assert report.overfit is None and flagged_heads(report, "overfit") == []
        assert report.overfit_note.startswith("not enough data (n = 4 inputs + 4 held-out")
        # 16 + 16 sentences from one template (nothing to overfit): two heads' excess distance
        # is above the threshold 0.05 by chance, but within 4 standard deviations of the
        # random-split noise, so neither is flagged
        sentences = template_sentences(0, 32)
        a, b = tok(sentences[:16]), tok(sentences[16:])
        report = diagnose(model, a, held_out=b, sink_positions=())
        assert report.overfit is not None and report.overfit_noise is not None
        above = report.overfit > report.thresholds.overfit
        assert above.sum() >= 1
        assert (report.overfit[above] < NOISE_SIGMAS * report.overfit_noise[above]).all()
        assert flagged_heads(report, "overfit") == []


GALLERY = [
    "The cat sat on the mat because it was tired.",
    "A man is playing a guitar on the stage.",
    "Is attention an explanation?",
    "She sold the old car and bought a bicycle, which was cheaper.",
    "The weather in Paris was cold, wet and windy yesterday.",
    "Two dogs are running through a field of grass.",
    "The committee postponed its decision until next week.",
    "Birds sing in the morning; owls call at night.",
]
