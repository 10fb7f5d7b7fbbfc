"""Every interpret function that runs the model uses the sentence pair's true token types.

On all-MiniLM-L6-v2 with ``tok("The cat sat.", "It was tired.")`` (segment B has type 1), each
function's result equals the one computed by hand with the model run on the true types, both
when the types are passed as ``token_type_ids=`` and when the tokenizer's ``BatchEncoding`` is
passed alone; and it differs from the result with every type 0 (what the functions computed
before they took token types), so the test can tell the two apart. The functions that make
dozens of passes (ablation importance, the ranking comparison) are checked the same way on a
small random model with two token types.
"""

from __future__ import annotations

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from minitransformer.backprop import backward
from minitransformer.config import EncoderConfig
from minitransformer.heads import Classifier
from minitransformer.interpret import (
    ablate_heads,
    ablation_importance,
    attention_permutation_effect,
    attention_weights,
    compare_rankings,
    diagnose,
    embedding_cosine,
    gradient_importance,
    gradient_weighted_rollout,
    gradient_x_input,
    head_mask_without,
    integrated_gradients,
    intervention_effect,
    mean_head_outputs,
    occlusion,
    patch_from,
    permute_attention_patch,
    pruning_curve,
    relevance_vs_occlusion,
    spearman,
)
from minitransformer.interpret.inputs import model_inputs
from minitransformer.interpret.objectives import class_logit
from minitransformer.pooling import sentence_embedding
from tests.conftest import make_encoder

RTOL, ATOL = 1e-4, 1e-5  # float32 model; the same arithmetic batched differently


@pytest.fixture(scope="module", autouse=True)
def one_blas_thread():
    """Small matrices: one BLAS thread is fastest, and several stall on a busy machine."""
    with threadpool_limits(limits=1, user_api="blas"):
        yield


@pytest.fixture(scope="module")
def minilm():
    try:
        from minitransformer.pretrained import load_pretrained

        return load_pretrained("all-MiniLM-L6-v2")
    except FileNotFoundError as error:
        pytest.skip(f"all-MiniLM-L6-v2 is not installed: {error}")


@pytest.fixture(scope="module")
def pair(minilm):
    """The pair, its arrays, and an objective: cosine with another sentence's embedding."""
    model, tok = minilm
    batch = tok("The cat sat.", "It was tired.")
    ids, mask, types = batch.input_ids, batch.attention_mask, batch.token_type_ids
    # [CLS] the cat sat . [SEP] | it was tired . [SEP]
    assert types[0].tolist() == [0] * 6 + [1] * 5
    other = tok("A dog slept on the sofa.")
    reference = sentence_embedding(model(other), other.attention_mask)
    return batch, ids, mask, types, embedding_cosine(reference, mask)


def both_ways(f, batch, ids, mask, types):
    """f called with the BatchEncoding alone and with explicit arrays; both must agree."""
    from_batch = f(batch, None, None)
    from_arrays = f(ids, mask, types)
    return from_batch, from_arrays


def assert_matches(result, expected, without_types):
    np.testing.assert_allclose(result, expected, rtol=RTOL, atol=ATOL)
    assert not np.allclose(without_types, expected, rtol=RTOL, atol=ATOL), "types made no change"


def test_model_inputs_reads_a_batch_encoding(minilm, pair):
    model, _ = minilm
    batch, ids, mask, types, _ = pair
    x = model_inputs(model, batch)
    np.testing.assert_array_equal(x.token_ids, ids)
    np.testing.assert_array_equal(x.mask, mask.astype(bool))
    np.testing.assert_array_equal(x.token_type_ids, types)
    with pytest.raises(ValueError, match="BatchEncoding, which holds the mask"):
        model_inputs(model, batch, mask)
    with pytest.raises(ValueError, match="BatchEncoding, which holds the mask"):
        model_inputs(model, batch, token_type_ids=types)


def test_occlusion_uses_the_true_types(minilm, pair):
    model, tok = minilm
    batch, ids, mask, types, F = pair
    mask_id = tok.vocab["[MASK]"]

    def by_hand(token_types):
        clean = F(model(ids, mask, token_type_ids=token_types))[0][0]
        scores = []
        for j in range(ids.shape[1]):
            occluded = ids.copy()
            occluded[0, j] = mask_id
            scores.append(clean - F(model(occluded, mask, token_type_ids=token_types))[0][0])
        return np.array(scores)

    for result in both_ways(
        lambda i, m, t: occlusion(model, i, F, m, replace_with=mask_id, token_type_ids=t),
        batch, ids, mask, types,
    ):  # fmt: skip
        assert_matches(result, by_hand(types), occlusion(model, ids, F, mask, replace_with=mask_id))
    hidden = occlusion(model, batch, F)  # the key-masking variant takes types too
    np.testing.assert_allclose(
        hidden, occlusion(model, ids, F, mask, token_type_ids=types), rtol=RTOL, atol=ATOL
    )


def gradients_by_hand(model, ids, mask, types, F):
    hidden, trace = model.run_with_trace(ids, mask, token_type_ids=types)
    return trace, backward(model, trace, F(hidden)[1])


def test_gradient_x_input_uses_the_true_types(minilm, pair):
    model, _ = minilm
    batch, ids, mask, types, F = pair
    trace, grads = gradients_by_hand(model, ids, mask, types, F)
    expected = (trace["embed.tokens"][0] * grads.embeddings[0]).sum(-1)
    for result in both_ways(
        lambda i, m, t: gradient_x_input(model, i, F, m, token_type_ids=t), batch, ids, mask, types
    ):
        assert_matches(result, expected, gradient_x_input(model, ids, F, mask))


def test_integrated_gradients_uses_the_true_types(minilm, pair):
    model, tok = minilm
    batch, ids, mask, types, F = pair
    baseline = np.where(np.isin(ids, [tok.vocab["[CLS]"], tok.vocab["[SEP]"]]), ids, 0)
    steps = 4
    # by hand: one forward and backward pass per point of the path, with the true types
    _, x_trace = model.run_with_trace(ids, mask, token_type_ids=types)
    _, b_trace = model.run_with_trace(baseline, mask, token_type_ids=types)
    e, e_base = x_trace["embed.sum"], b_trace["embed.sum"]
    weights = np.array([0.5, 1, 1, 1, 0.5]) / steps
    average = 0.0
    for w, alpha in zip(weights, np.linspace(0, 1, steps + 1), strict=True):
        point = (e_base + alpha * (e - e_base)).astype(e.dtype)
        hidden, trace = model.run_with_trace(
            baseline, mask, token_type_ids=types, patch={"embed.sum": point}
        )
        average = average + w * backward(model, trace, F(hidden)[1]).embeddings
    expected = ((e - e_base) * average).sum(-1)[0]
    for result in both_ways(
        lambda i, m, t: integrated_gradients(model, i, F, baseline, m, steps, token_type_ids=t),
        batch, ids, mask, types,
    ):  # fmt: skip
        without = integrated_gradients(model, ids, F, baseline, mask, steps).scores
        assert_matches(result.scores, expected, without)
        assert result.output == pytest.approx(F(model(ids, mask, token_type_ids=types))[0][0])


def test_gradient_weighted_rollout_uses_the_true_types(minilm, pair):
    model, _ = minilm
    batch, ids, mask, types, F = pair
    trace, grads = gradients_by_hand(model, ids, mask, types, F)
    R = np.eye(ids.shape[1])
    for l in range(model.config.n_layers):
        A = trace[f"blocks.{l}.attn.weights"][0]
        R = R + np.maximum(grads.attn_weights[l][0] * A, 0).mean(axis=0) @ R
    for result in both_ways(
        lambda i, m, t: gradient_weighted_rollout(model, i, F, m, token_type_ids=t),
        batch, ids, mask, types,
    ):  # fmt: skip
        assert_matches(result, R, gradient_weighted_rollout(model, ids, F, mask))


def test_interventions_use_the_true_types(minilm, pair):
    model, tok = minilm
    batch, ids, mask, types, _ = pair
    heads = [(2, 0), (3, 5)]
    head_mask = head_mask_without(model.config, heads)
    expected = model(ids, mask, token_type_ids=types, head_mask=head_mask)
    for result in both_ways(
        lambda i, m, t: ablate_heads(model, i, heads, m, token_type_ids=t), batch, ids, mask, types
    ):
        assert_matches(result, expected, ablate_heads(model, ids, heads, mask))

    _, trace = model.run_with_trace(ids, mask, token_type_ids=types)
    z = np.stack([trace[f"blocks.{l}.attn.z"] for l in range(6)])  # (L, 1, H, S, Dh)
    means = z[:, 0].mean(axis=2)  # every token is real
    for result in both_ways(
        lambda i, m, t: mean_head_outputs(model, i, m, token_type_ids=t), batch, ids, mask, types
    ):
        assert_matches(result, means, mean_head_outputs(model, ids, mask))
    mean_ablated = ablate_heads(model, batch, heads, means=means)
    assert not np.allclose(mean_ablated, ablate_heads(model, ids, heads, mask, means=means))

    names = ["blocks.1.attn.out", "blocks.4.out"]
    for result in both_ways(
        lambda i, m, t: patch_from(model, i, names, m, source_token_type_ids=t),
        batch, ids, mask, types,
    ):  # fmt: skip
        for name in names:
            assert_matches(result[name], trace[name], patch_from(model, ids, names, mask)[name])

    target = tok("The dog ran.", "It was fast.")  # same length, the other pair as the target

    def metric(hidden):
        return sentence_embedding(hidden, target.attention_mask)

    patch = patch_from(model, batch, names[:1])
    effect = intervention_effect(model, target, metric, patch=patch)
    t_ids, t_mask, t_types = target.input_ids, target.attention_mask, target.token_type_ids
    assert_matches(
        effect.intervened,
        metric(model(t_ids, t_mask, token_type_ids=t_types, patch=patch)),
        intervention_effect(model, t_ids, metric, t_mask, patch=patch).intervened,
    )
    assert_matches(
        effect.clean, metric(model(t_ids, t_mask, token_type_ids=t_types)),
        intervention_effect(model, t_ids, metric, t_mask).clean,
    )  # fmt: skip


def test_permutation_effect_uses_the_true_types(minilm, pair):
    model, _ = minilm
    batch, ids, mask, types, _ = pair

    def metric(hidden):
        return hidden[:, 0, :4]

    rng = np.random.default_rng(3)
    _, trace = model.run_with_trace(ids, mask, token_type_ids=types)
    clean = metric(model(ids, mask, token_type_ids=types))
    expected = [
        metric(model(ids, mask, token_type_ids=types,
                     patch=permute_attention_patch([1], trace["blocks.0.attn.mask"], rng))) - clean
        for _ in range(2)
    ]  # fmt: skip
    for result in both_ways(
        lambda i, m, t: attention_permutation_effect(
            model, i, metric, m, layers=[1], n_permutations=2, seed=3, token_type_ids=t
        ),
        batch, ids, mask, types,
    ):  # fmt: skip
        without = attention_permutation_effect(
            model, ids, metric, mask, layers=[1], n_permutations=2, seed=3
        )
        assert_matches(result, np.stack(expected), without)


def test_head_importance_and_pruning_use_the_true_types(minilm, pair):
    model, _ = minilm
    batch, ids, mask, types, F = pair
    _, grads = gradients_by_hand(model, ids, mask, types, F)
    expected = np.abs(grads.head_mask).mean(axis=0)
    for result in both_ways(
        lambda i, m, t: gradient_importance(model, i, F, m, normalize=False, token_type_ids=t),
        batch, ids, mask, types,
    ):  # fmt: skip
        assert_matches(result, expected, gradient_importance(model, ids, F, mask, normalize=False))

    def metric(hidden):
        return float(F(hidden)[0][0])

    order = [(0, 3), (5, 1), (2, 7)]
    by_hand = [
        metric(model(ids, mask, token_type_ids=types, head_mask=head_mask_without(model.config,
                                                                                 order[:k])))
        for k in range(4)
    ]  # fmt: skip
    for result in both_ways(
        lambda i, m, t: pruning_curve(model, i, metric, order, m, token_type_ids=t).metric,
        batch, ids, mask, types,
    ):  # fmt: skip
        assert_matches(result, by_hand, pruning_curve(model, ids, metric, order, mask).metric)


def test_diagnose_and_comparisons_use_the_true_types(minilm, pair):
    model, tok = minilm
    batch, ids, mask, types, F = pair
    two = tok(["The cat sat.", "Dogs bark."], ["It was tired.", "Cats do not."])
    _, trace = model.run_with_trace(two)  # the model reads the BatchEncoding's types itself
    A = attention_weights(trace)
    report = diagnose(model, two, held_out=two)
    explicit = diagnose(
        model, two.input_ids, two.attention_mask, token_type_ids=two.token_type_ids,
        held_out=(two.input_ids, two.attention_mask, two.token_type_ids),
    )  # fmt: skip
    untyped = diagnose(model, two.input_ids, two.attention_mask)
    real = two.attention_mask.astype(bool)
    padding_share = np.einsum("lbhij,bj,bi->lh", A, (~real).astype(float), real) / real.sum()
    np.testing.assert_allclose(report.padding, padding_share, atol=1e-6)
    assert_matches(report.uniformity, explicit.uniformity, untyped.uniformity)
    assert report.overfit_note.startswith("not enough data (n = 2 inputs + 2 held-out")

    def objective_of(b):
        return F, 0

    mask_id = tok.vocab["[MASK]"]
    rho = relevance_vs_occlusion(model, batch, objective_of, replace_with=mask_id, flow=False).rho
    typed = relevance_vs_occlusion(
        model, ids, objective_of, mask, replace_with=mask_id, flow=False, token_type_ids=types
    ).rho
    for name in rho:
        np.testing.assert_allclose(rho[name], typed[name], atol=1e-6)
    scores = occlusion(model, batch, F, replace_with=mask_id)
    _, pair_trace = model.run_with_trace(batch)
    raw = attention_weights(pair_trace)[-1, 0].mean(axis=0)[0]
    assert rho["raw"][0] == pytest.approx(spearman(raw, scores), abs=1e-6)


TYPED = EncoderConfig(vocab_size=12, d_model=8, n_heads=2, n_layers=2, d_ff=16, max_len=8,
                      type_vocab_size=2, positional="learned", dtype="float64")  # fmt: skip
IDS = np.array([[1, 4, 2, 7, 3, 5], [5, 5, 9, 11, 2, 0]])
MASK = IDS != 0
TYPES = np.array([[0, 0, 0, 1, 1, 1], [0, 0, 1, 1, 1, 0]])


def test_many_pass_functions_use_the_true_types_on_a_small_model():
    model = make_encoder(TYPED, seed=4)
    clf = Classifier(8, 3, pooling="token", seed=2, dtype="float64")
    objective = class_logit(clf, classes=1, position=0)

    def metric(hidden):
        return float(objective(hidden)[0].sum())

    drop = ablation_importance(model, IDS, metric, MASK, token_type_ids=TYPES)
    full = metric(model(IDS, MASK, token_type_ids=TYPES))
    expected = np.array([
        [full - metric(model(IDS, MASK, token_type_ids=TYPES,
                             head_mask=head_mask_without(TYPED, [(l, h)]))) for h in range(2)]
        for l in range(2)
    ])  # fmt: skip
    assert_matches(drop, expected, ablation_importance(model, IDS, metric, MASK))

    def objective_of(b):
        return objective, 0

    rankings = compare_rankings(model, IDS, objective_of, MASK, ig_steps=4, replace_with=0,
                                token_type_ids=TYPES)  # fmt: skip
    for b in range(2):  # each entry is the rank correlation of the single-sequence scores
        ids, real, types = IDS[b], MASK[b], TYPES[b]
        gxi = gradient_x_input(model, ids, objective, real, token_type_ids=types)
        occ = occlusion(model, ids, objective, real, replace_with=0, token_type_ids=types)
        assert rankings.rho[b, 1, 3] == pytest.approx(spearman(gxi[real], occ[real]))
    untyped = compare_rankings(model, IDS, objective_of, MASK, ig_steps=4, replace_with=0)
    assert not np.allclose(rankings.rho, untyped.rho)
