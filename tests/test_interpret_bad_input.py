"""Careless and hostile input to ``interpret``: a number or a clear error, never a NaN or a wrap.

Each class of mistake has one mechanism (:mod:`minitransformer.interpret.checks`,
:func:`~minitransformer.interpret.inputs.one_sequence`, :func:`spearman`'s constant check) and
is tried here with several inputs; hypothesis draws them where the class is a whole range.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minitransformer.config import EncoderConfig
from minitransformer.heads import Classifier
from minitransformer.interpret import (
    ablate_heads,
    attention_permutation_effect,
    attention_rollout,
    attention_weights,
    class_logit,
    classical_mds,
    classification_loss,
    cluster_heads,
    compare_rankings,
    diagnose,
    embedding_cosine,
    gradient_importance,
    gradient_weighted_rollout,
    gradient_x_input,
    head_distances,
    head_mask_without,
    head_statistics,
    importance_order,
    integrated_gradients,
    intervention_effect,
    mean_head_outputs,
    occlusion,
    permute_attention_patch,
    pruning_curve,
    random_order,
    rank,
    relevance_vs_occlusion,
    spearman,
)
from tests.conftest import make_encoder

CFG = EncoderConfig(vocab_size=12, d_model=8, n_heads=2, n_layers=2, d_ff=16, max_len=8,
                    dtype="float64")  # fmt: skip
IDS = np.array([[1, 4, 2, 7]])
NONE_REAL = np.zeros((1, 4), bool)
MODEL = make_encoder(CFG, seed=0)
CLF = Classifier(8, 3, pooling="token", seed=1, dtype="float64")
F = class_logit(CLF, classes=1, position=0)


# ---------------------------------------------------------------- NaN without an error


@pytest.mark.parametrize("value", [0.0, 1.0, -3.5, 1e-30])
@pytest.mark.parametrize("n", [1, 2, 7])
def test_spearman_of_a_constant_vector_is_an_error_not_nan(value, n):
    with pytest.raises(ValueError, match="a is constant .* undefined"):
        spearman(np.full(n, value), np.arange(n))
    with pytest.raises(ValueError, match="b is constant"):
        spearman(np.arange(n) if n > 1 else [0.0, 1.0], np.full(max(n, 2), value))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-1e6, 1e6), min_size=2, max_size=12), st.randoms())
def test_spearman_is_a_number_in_minus_one_one_or_a_clear_error(a, random):
    b = list(a)
    random.shuffle(b)
    try:
        rho = spearman(a, b)
    except ValueError as error:  # only a constant input may refuse
        assert "constant" in str(error) and len(set(a)) == 1
        return
    assert -1.0 - 1e-12 <= rho <= 1.0 + 1e-12


@pytest.mark.parametrize("bad", [[1.0, np.nan, 2.0], [np.inf, 1.0], [[1, 2], [3, 4]], ["a", "b"]])
def test_rank_and_spearman_refuse_non_finite_or_non_vector_input(bad):
    with pytest.raises((ValueError, TypeError), match="values|a "):
        rank(bad)
    with pytest.raises((ValueError, TypeError), match="a "):
        spearman(bad, [1.0, 2.0])


def test_constant_scores_are_counted_not_averaged_as_nan():
    model = make_encoder(CFG, seed=1)
    ids = np.array([[1, 4, 2, 7], [3, 0, 0, 0]])  # the second has one real token: rho undefined
    mask = ids != 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "Mean of empty slice"
        agreement = relevance_vs_occlusion(model, ids, lambda b: (F, 0), mask, replace_with=0)
        rankings = compare_rankings(model, ids, lambda b: (F, 0), mask, ig_steps=2)
    assert np.isnan(agreement.rho["raw"][1]) and not np.isnan(agreement.rho["raw"][0])
    assert "1 of 2" in agreement.table()
    mean, _ = agreement.summary()["raw"]
    assert mean == pytest.approx(agreement.rho["raw"][0])
    assert not np.isnan(rankings.mean).any() and (rankings.n_defined[0, 1:] == 1).all()
    assert "leave out inputs where a method's scores are constant" in rankings.table()


@pytest.mark.parametrize("reference", [np.zeros((1, 8)), np.zeros(8), np.array([[0.0] * 8])])
def test_a_zero_reference_embedding_is_an_error_before_any_nan(reference):
    with pytest.raises(ValueError, match="reference row 0 is all zeros"):
        gradient_x_input(MODEL, IDS, embedding_cosine(reference, np.ones((1, 4))))


@pytest.mark.parametrize("reference", [np.full((1, 8), np.nan), np.full((1, 8), np.inf)])
def test_a_non_finite_reference_is_an_error(reference):
    with pytest.raises(ValueError, match="reference must be a finite array"):
        embedding_cosine(reference, np.ones((1, 4)))


def test_embedding_cosine_refuses_a_sequence_without_real_tokens():
    with pytest.raises(ValueError, match="mask row 1 has no real token"):
        embedding_cosine(np.ones((2, 8)), [[1, 1, 0, 0], [0, 0, 0, 0]])


ONE_SEQUENCE = {
    "occlusion": lambda mask: occlusion(MODEL, IDS, F, mask),
    "occlusion [MASK]": lambda mask: occlusion(MODEL, IDS, F, mask, replace_with=0),
    "gradient x input": lambda mask: gradient_x_input(MODEL, IDS, F, mask),
    "integrated gradients": lambda mask: integrated_gradients(MODEL, IDS, F, 0 * IDS, mask),
    "gradient-weighted rollout": lambda mask: gradient_weighted_rollout(MODEL, IDS, F, mask),
    "relevance vs occlusion": lambda mask: relevance_vs_occlusion(MODEL, IDS, lambda b: (F, 0),
                                                                  mask),
    "compare rankings": lambda mask: compare_rankings(MODEL, IDS, lambda b: (F, 0), mask),
}  # fmt: skip


@pytest.mark.parametrize("name", ONE_SEQUENCE)
def test_explaining_a_sequence_without_a_real_token_is_an_error(name):
    with pytest.raises(ValueError, match="sequence 0 of token_ids has no real token"):
        ONE_SEQUENCE[name](NONE_REAL)


AVERAGES = {
    "mean_head_outputs": lambda: mean_head_outputs(MODEL, IDS, NONE_REAL),
    "diagnose": lambda: diagnose(MODEL, IDS, NONE_REAL),
    "head_statistics": lambda: head_statistics(_weights(), mask=NONE_REAL),
    "head_distances": lambda: head_distances(_weights(), NONE_REAL),
}


def _weights() -> np.ndarray:
    return attention_weights(MODEL.run_with_trace(IDS, NONE_REAL)[1])


@pytest.mark.parametrize("name", AVERAGES)
def test_averaging_over_no_real_token_is_an_error(name):
    with pytest.raises(ValueError, match="no real token"):
        AVERAGES[name]()


def test_batch_functions_give_numbers_for_an_all_masked_row():
    """A batch with one row without real tokens: the model gives that row zero attention and
    every function returns finite numbers (the other rows are unchanged)."""
    ids = np.array([[1, 4, 2, 7], [3, 5, 6, 2]])
    mask = np.array([[1, 1, 1, 0], [0, 0, 0, 0]])

    def metric(hidden):
        return float(hidden.sum())

    results = [
        ablate_heads(MODEL, ids, [(0, 1)], mask),
        intervention_effect(MODEL, ids, metric, mask, head_mask=np.ones((2, 2))).change,
        attention_permutation_effect(MODEL, ids, metric, mask, n_permutations=3),
        gradient_importance(MODEL, ids, F, mask),
        pruning_curve(MODEL, ids, metric, [(1, 0)], mask).metric,
        mean_head_outputs(MODEL, ids, mask),
        diagnose(MODEL, ids, mask).uniformity,
    ]
    for result in results:
        assert np.isfinite(result).all()


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_attention_weights_are_refused(bad):
    A = _weights()
    A[0, 0, 0, 0, 0] = bad
    for f in (attention_rollout, head_statistics, head_distances):
        with pytest.raises(ValueError, match="weights must be finite"):
            f(A)


@pytest.mark.parametrize("bad", [np.full((2, 2), np.nan), np.array([[0, np.inf], [np.inf, 0]])])
def test_non_finite_distances_are_refused(bad):
    for f in (classical_mds, lambda D: cluster_heads(D, 0.1)):
        with pytest.raises(ValueError, match="distances must be finite"):
            f(bad)


# ------------------------------------------------ out-of-range indices never wrap


@settings(max_examples=40, deadline=None)
@given(st.one_of(st.integers(-(10**6), -1), st.integers(3, 10**6)))
def test_class_logit_refuses_classes_out_of_range(c):
    with pytest.raises(ValueError, match=rf"classes must be in \[0, 3\) .* got {c}"):
        class_logit(CLF, classes=c, position=0)
    with pytest.raises(ValueError, match=r"classes must be in \[0, 3\)"):
        class_logit(CLF, classes=[0, c], position=0)


@pytest.mark.parametrize("c", [1.0, 2.5, True, np.bool_(False), "1", None, [1.0, 2.0]])
def test_class_logit_refuses_classes_that_are_not_ints(c):
    with pytest.raises(TypeError, match="classes must be ints"):
        class_logit(CLF, classes=c, position=0)


@pytest.mark.parametrize("position", [-1, 4, 100, [0, -2]])
def test_class_logit_refuses_positions_out_of_range_when_called(position):
    objective = class_logit(CLF, classes=1, position=position)
    with pytest.raises(ValueError, match=r"position must be in \[0, 4\)"):
        objective(MODEL(np.repeat(IDS, 2, axis=0)))


@pytest.mark.parametrize("targets", [[[-1, 0, 0, 0]], [[0, 3, 0, 0]], [[0, 0, -7, 0]]])
def test_classification_loss_refuses_targets_out_of_range(targets):
    with pytest.raises(ValueError, match=r"targets must be in \[0, 3\)"):
        classification_loss(CLF, np.array(targets))(MODEL(IDS))


@pytest.mark.parametrize("replace_with", [-1, 12, 10**9])
def test_occlusion_refuses_a_replacement_id_out_of_the_vocabulary(replace_with):
    with pytest.raises(
        ValueError, match=rf"replace_with must be in \[0, 12\) .* got {replace_with}"
    ):
        occlusion(MODEL, IDS, F, replace_with=replace_with)


@pytest.mark.parametrize(
    ("positions", "got"), [([4], "4"), ([-1], "-1"), ([0, 9], "9"), ([-5], "-5")]
)
def test_special_positions_out_of_range_name_the_argument(positions, got):
    with pytest.raises(ValueError, match=rf"special_positions must be in \[0, 4\) .* got {got}"):
        head_statistics(_weights(), IDS, special_positions=positions)
    with pytest.raises(ValueError, match="special_positions must be in"):
        diagnose(MODEL, IDS, sink_positions=positions)


@pytest.mark.parametrize(
    ("heads", "error", "message"),
    [
        ([(2, 0)], ValueError, r"layer of heads entry \(2, 0\) must be in \[0, 2\)"),
        ([(0, -1)], ValueError, r"head of heads entry \(0, -1\) must be in \[0, 2\)"),
        ([(0, 1.0)], TypeError, "head of heads entry .* must be an int"),
        ([(0,)], TypeError, r"each entry of heads must be a \(layer, head\) pair"),
        ((0, 1), TypeError, r"heads must be a list of \(layer, head\) pairs, e\.g\. \[\(0, 1\)\]"),
    ],
)
def test_bad_heads_name_the_entry(heads, error, message):
    with pytest.raises(error, match=message):
        head_mask_without(CFG, heads)
    with pytest.raises(error, match=message):
        ablate_heads(MODEL, IDS, heads)


# ------------------------------------------ counts, seeds and generators, named


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"n_permutations": 0}, ValueError, "n_permutations must be an int >= 1, got 0"),
        ({"n_permutations": -3}, ValueError, "n_permutations must be an int >= 1, got -3"),
        ({"n_permutations": 2.0}, TypeError, "n_permutations must be an int >= 1, got float"),
        ({"n_permutations": True}, TypeError, "n_permutations must be an int >= 1, got bool"),
        ({"seed": -1}, ValueError, "seed must be an int >= 0, got -1"),
        ({"seed": "0"}, TypeError, "seed must be an int >= 0, got str"),
        ({"layers": [2]}, ValueError, r"layers entry must be in \[0, 2\) \(2 layers\), got 2"),
        ({"layers": 1}, TypeError, r"layers must be a list of block indices, e\.g\. \[1\]"),
    ],
)
def test_permutation_effect_arguments(kwargs, error, message):
    with pytest.raises(error, match=message):
        attention_permutation_effect(MODEL, IDS, lambda h: h.sum(), **kwargs)


@pytest.mark.parametrize("rng", [5, 0, None, np.random.RandomState(0), "seed"])
def test_permute_attention_patch_needs_a_generator(rng):
    with pytest.raises(TypeError, match=r"rng must be a numpy\.random\.Generator"):
        permute_attention_patch([0], np.ones((1, 1, 1, 4), bool), rng)


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: integrated_gradients(MODEL, IDS, F, 0 * IDS, steps=0), ValueError,
         "steps must be an int >= 1, got 0"),
        (lambda: integrated_gradients(MODEL, IDS, F, 0 * IDS, steps=True), TypeError,
         "steps must be an int >= 1, got bool"),
        (lambda: integrated_gradients(MODEL, IDS, F, 0 * IDS, steps=10.0), TypeError,
         "steps must be an int >= 1, got float"),
        (lambda: diagnose(MODEL, IDS, n_splits=1), ValueError, "n_splits must be an int >= 2"),
        (lambda: diagnose(MODEL, IDS, seed=-2), ValueError, "seed must be an int >= 0"),
        (lambda: diagnose(MODEL, IDS, held_out=IDS), TypeError,
         "held_out must be a BatchEncoding or a tuple"),
        (lambda: random_order(0, 2), ValueError, "n_layers must be an int >= 1, got 0"),
        (lambda: random_order(2, 2, seed=1.5), TypeError, "seed must be an int >= 0"),
        (lambda: importance_order(np.ones(3)), ValueError,
         r"importance must have shape \(n_layers, n_heads\), got \(3,\)"),
        (lambda: importance_order([[np.nan, 1.0]]), ValueError, "importance must be finite"),
        (lambda: relevance_vs_occlusion(MODEL, IDS, lambda b: (F, 0), layer=2), ValueError,
         r"layer must be an int in \[-2, 2\), got 2"),
        (lambda: occlusion(MODEL, np.array([[1, 2], [3, 4]]), F), ValueError,
         "token_ids must be one sequence"),
        (lambda: ablate_heads(MODEL, IDS, [(0, 0)], means=np.zeros((2, 2))), ValueError,
         r"means must have shape \(2, 2, 4\)"),
    ],
)  # fmt: skip
def test_other_arguments_name_what_they_expected(call, error, message):
    with pytest.raises(error, match=message):
        call()
