"""Objectives, interventions, head importance, pruning curves, attributions and Spearman."""

from __future__ import annotations

import numpy as np
import pytest

from minitransformer.backprop import backward
from minitransformer.config import EncoderConfig
from minitransformer.encoder import Encoder
from minitransformer.heads import Classifier
from minitransformer.interpret.attribution import (
    gradient_weighted_rollout,
    gradient_x_input,
    integrated_gradients,
    occlusion,
)
from minitransformer.interpret.compare import rank, relevance_vs_occlusion, spearman
from minitransformer.interpret.importance import (
    ablation_importance,
    gradient_importance,
    importance_order,
    normalize_per_layer,
    pruning_curve,
    random_order,
)
from minitransformer.interpret.interventions import (
    ablate_heads,
    attention_permutation_effect,
    head_mask_without,
    intervention_effect,
    mean_ablation_patch,
    mean_head_outputs,
    patch_from,
    permute_attention_patch,
)
from minitransformer.interpret.objectives import (
    class_logit,
    classification_loss,
    embedding_cosine,
)
from tests.conftest import make_encoder

CFG = EncoderConfig(
    vocab_size=12, d_model=8, n_heads=2, n_layers=2, d_ff=16, max_len=8,
    positional="learned", activation="gelu", dtype="float64",
)  # fmt: skip
IDS = np.array([[1, 4, 2, 7, 3, 5], [5, 5, 9, 11, 0, 0]])
MASK = IDS != 0


@pytest.fixture(scope="module")
def model() -> Encoder:
    return make_encoder(CFG, seed=5)


def head(pooling: str = "token", n_classes: int = 5) -> Classifier:
    return Classifier(8, n_classes, pooling=pooling, seed=1, dtype="float64")


def check_objective_gradient(objective, hidden: np.ndarray) -> None:
    values, grad = objective(hidden)
    assert values.shape == (hidden.shape[0],) and grad.shape == hidden.shape
    E = np.random.default_rng(0).standard_normal(hidden.shape)
    eps = 1e-6
    numeric = (objective(hidden + eps * E)[0].sum() - objective(hidden - eps * E)[0].sum()) / (
        2 * eps
    )
    assert (grad * E).sum() == pytest.approx(numeric, rel=1e-6)


def test_objectives_return_their_gradient(model):
    hidden = model(IDS, MASK)
    check_objective_gradient(class_logit(head(), classes=[1, 3], position=[2, 0]), hidden)
    check_objective_gradient(class_logit(head("mean"), classes=2, mask=MASK), hidden)
    targets = np.array([[1, 2, -100, 0, 4, 1], [3, -100, -100, 2, -100, -100]])
    loss = classification_loss(head(), targets)
    check_objective_gradient(loss, hidden)
    values, _ = loss(hidden)
    manual = classification_loss(head(), targets[1:])(hidden[1:])[0]
    assert values[1] == pytest.approx(manual[0])  # each sequence its own mean
    reference = np.random.default_rng(3).standard_normal((2, 8))
    check_objective_gradient(embedding_cosine(reference, MASK), hidden)
    with pytest.raises(ValueError, match="position is required"):
        class_logit(head(), classes=1)
    with pytest.raises(TypeError, match="classifier must be a Classifier"):
        class_logit(object(), classes=1)


# ------------------------------------------------------------------ interventions


def test_removing_a_head_whose_output_is_zeroed_changes_nothing(model):
    dead = Encoder(CFG, params={k: v.copy() for k, v in model.params.items()})
    dead.params["blocks.1.attn.W_O"][4:] = 0.0  # head 1 of block 1 writes nothing
    clean = dead(IDS, MASK)
    np.testing.assert_allclose(ablate_heads(dead, IDS, [(1, 1)], MASK), clean, atol=1e-12)
    objective = class_logit(head(), classes=1, position=0)
    importance = gradient_importance(dead, IDS, objective, MASK, normalize=False)
    assert importance[1, 1] == 0.0 and (importance[[0, 0, 1], [0, 1, 0]] > 0).all()
    drop = ablation_importance(dead, IDS, lambda h: float(objective(h)[0].mean()), MASK)
    assert drop[1, 1] == pytest.approx(0.0, abs=1e-12) and np.abs(drop[0]).min() > 0


def test_mean_ablation_puts_the_reference_mean_in_place(model):
    means = mean_head_outputs(model, IDS, MASK)
    _, trace = model.run_with_trace(IDS, MASK, keep="*.attn.z")
    z0 = trace["blocks.0.attn.z"]  # (B, H, S, Dh)
    np.testing.assert_allclose(means[0, 1], z0[:, 1][MASK].mean(axis=0))
    patch = mean_ablation_patch(means, [(0, 1)])
    _, patched = model.run_with_trace(IDS, MASK, patch=patch, keep="*.attn.z")
    np.testing.assert_allclose(
        patched["blocks.0.attn.z"][:, 1], np.broadcast_to(means[0, 1], (2, 6, 4))
    )
    np.testing.assert_array_equal(patched["blocks.0.attn.z"][:, 0], z0[:, 0])
    mean_out = ablate_heads(model, IDS, [(0, 1)], MASK, means=means)
    zero_out = ablate_heads(model, IDS, [(0, 1)], MASK)
    assert not np.allclose(mean_out, zero_out)
    with pytest.raises(ValueError, match=r"layer of heads entry \(2, 0\) must be in \[0, 2\)"):
        ablate_heads(model, IDS, [(2, 0)])


def test_patching_everything_a_block_outputs_moves_the_output_to_the_source(model):
    source = np.array([[3, 3, 3, 1, 2, 8], [6, 7, 8, 9, 10, 11]])
    objective = class_logit(head(), classes=2, position=1)
    effect = intervention_effect(
        model, IDS, lambda h: objective(h)[0], patch=patch_from(model, source, ["blocks.1.out"])
    )
    np.testing.assert_allclose(effect.intervened, objective(model(source))[0])
    np.testing.assert_allclose(effect.change, effect.intervened - effect.clean)
    assert head_mask_without(CFG, [(1, 0)]).tolist() == [[1, 1], [0, 1]]


def test_permuted_attention_keeps_each_rows_weights_and_padding(model):
    _, trace = model.run_with_trace(IDS, MASK)
    weights, allowed = trace["blocks.1.attn.weights"], trace["blocks.1.attn.mask"]
    patch = permute_attention_patch([1], allowed, np.random.default_rng(0))
    shuffled = patch["blocks.1.attn.weights"](weights)
    np.testing.assert_allclose(np.sort(shuffled, -1), np.sort(weights, -1))  # same weights
    assert (shuffled[1, :, :, 4:] == 0).all()  # padding keys still get nothing
    assert not np.allclose(shuffled, weights)


def test_permuting_attention_matters_only_when_attention_is_not_uniform(model):
    flat = Encoder(CFG, params={k: v.copy() for k, v in model.params.items()})
    for l in range(2):  # W_Q = 0, b_Q = 0: every score 0, every row uniform
        flat.params[f"blocks.{l}.attn.W_Q"][:] = 0.0
        flat.params[f"blocks.{l}.attn.b_Q"][:] = 0.0
    objective = class_logit(head(), classes=1, position=0)

    def metric(hidden):
        return objective(hidden)[0]

    unchanged = attention_permutation_effect(flat, IDS, metric, MASK, n_permutations=5)
    assert unchanged.shape == (5, 2) and np.abs(unchanged).max() < 1e-12
    moved = attention_permutation_effect(model, IDS, metric, MASK, n_permutations=5)
    assert np.median(np.abs(moved)) > 1e-3


# ------------------------------------------------------------------ importance


def test_gradient_importance_is_the_mean_absolute_per_sequence_gradient(model):
    targets = np.array([[1, 2, 3, 0, 4, 1], [3, 1, 0, 2, -100, -100]])
    loss = classification_loss(head(), targets, MASK)
    I = gradient_importance(model, IDS, loss, MASK, normalize=False)
    eps, fd = 1e-6, np.zeros((2, 2, 2))
    for b in range(2):
        for l in range(2):
            for h in range(2):
                up, down = np.ones((2, 2)), np.ones((2, 2))
                up[l, h] += eps
                down[l, h] -= eps
                f = classification_loss(head(), targets[b : b + 1], MASK[b : b + 1])
                hi = f(model(IDS[b : b + 1], MASK[b : b + 1], head_mask=up))[0][0]
                lo = f(model(IDS[b : b + 1], MASK[b : b + 1], head_mask=down))[0][0]
                fd[b, l, h] = (hi - lo) / (2 * eps)
    np.testing.assert_allclose(I, np.abs(fd).mean(0), rtol=1e-6)  # |.| per sequence, then mean
    assert not np.allclose(I, np.abs(fd.mean(0)))  # not |mean|
    normed = normalize_per_layer(I)
    np.testing.assert_allclose(np.linalg.norm(normed, axis=1), 1.0)


def test_pruning_curve_and_orders(model):
    objective = class_logit(head(), classes=1, position=0)

    def metric(hidden):
        return float(objective(hidden)[0].mean())

    order = importance_order(np.array([[0.3, 0.1], [0.9, 0.2]]))
    assert order == [(0, 1), (1, 1), (0, 0), (1, 0)]
    assert sorted(random_order(2, 2, seed=3)) == [(0, 0), (0, 1), (1, 0), (1, 1)]
    curve = pruning_curve(model, IDS, metric, order, MASK, label="importance")
    assert curve.n_removed.tolist() == [0, 1, 2, 3, 4]
    assert curve.metric[0] == pytest.approx(metric(model(IDS, MASK)))
    none_left = model(IDS, MASK, head_mask=np.zeros((2, 2)))
    assert curve.metric[-1] == pytest.approx(metric(none_left))
    assert curve.metric[2] == pytest.approx(
        metric(model(IDS, MASK, head_mask=head_mask_without(CFG, order[:2])))
    )


def test_heads_needed_reads_the_curve_from_the_left():
    from minitransformer.interpret.importance import PruningCurve

    curve = PruningCurve([(0, 0)] * 4, np.arange(5), np.array([1.0, 0.99, 0.95, 0.5, 0.97]), 4)
    assert curve.heads_needed(0.9) == 2  # 2 removed still >= 0.9; the 3rd breaks it
    assert curve.heads_needed(0.4) == 0


# ------------------------------------------------------------------ attributions


def previous_token_model() -> Encoder:
    """One layer, one head; every query reads only the token before it (hard, by position)."""
    cfg = EncoderConfig(
        vocab_size=12, d_model=16, n_heads=1, n_layers=1, d_ff=16, max_len=8,
        positional="learned", dtype="float64",
    )  # fmt: skip
    model = make_encoder(cfg, seed=2)
    p = model.params
    p["embed.W_pos"][:] = 0.0
    p["embed.W_pos"][:, 8:] = 3.0 * np.eye(8)  # position i -> 3 e_(8+i)
    p["embed.W_E"][:, 8:] = 0.0  # token embeddings in the first 8 dimensions only
    p["blocks.0.attn.W_Q"][:] = 0.0
    p["blocks.0.attn.W_K"][:] = 0.0
    p["blocks.0.attn.b_Q"][:] = 0.0
    p["blocks.0.attn.b_K"][:] = 0.0
    for i in range(1, 8):
        p["blocks.0.attn.W_Q"][8 + i, 8 + i - 1] = 10.0  # query i looks for key i - 1
        p["blocks.0.attn.W_K"][8 + i - 1, 8 + i - 1] = 10.0
    return model


def test_occlusion_finds_exactly_the_tokens_a_hard_previous_token_head_reads():
    model = previous_token_model()
    ids = np.array([3, 5, 7, 9, 11, 2])
    _, trace = model.run_with_trace(ids)
    assert trace["blocks.0.attn.weights"][0, 0, 3, 2] > 1 - 1e-9  # the head is hard
    objective = class_logit(Classifier(16, 4, seed=0, dtype="float64"), classes=2, position=3)
    by_id = occlusion(model, ids, objective, replace_with=1)
    assert np.abs(by_id[[0, 1, 4, 5]]).max() < 1e-6 and np.abs(by_id[[2, 3]]).min() > 1e-3
    by_mask = occlusion(model, ids, objective)
    assert np.abs(by_mask[[0, 1, 4, 5]]).max() < 1e-6 and abs(by_mask[2]) > 1e-3
    assert (occlusion(model, ids, objective, replace_with=None, mask=[1, 1, 1, 1, 1, 0])[5]) == 0
    R = gradient_weighted_rollout(model, ids, objective)
    assert np.abs(R[3, [0, 1, 4, 5]]).max() < 1e-6 and R[3, 3] == pytest.approx(1.0)
    hidden, trace = model.run_with_trace(ids)  # one layer: R = I + (dF/dA * A)^+
    grads = backward(model, trace, objective(hidden)[1])
    A_bar = np.maximum(grads.attn_weights[0][0, 0] * trace["blocks.0.attn.weights"][0, 0], 0)
    np.testing.assert_allclose(R, np.eye(6) + A_bar)
    gxi = gradient_x_input(model, ids, objective)
    assert np.abs(gxi[[0, 1, 4, 5]]).max() < 1e-6


def test_gradient_x_input_is_a_directional_derivative(model):
    objective = class_logit(head(), classes=3, position=2)
    ids = IDS[0]
    scores = gradient_x_input(model, ids, objective)
    _, trace = model.run_with_trace(ids, keep=["embed.sum", "embed.tokens"])
    e, x = trace["embed.sum"], trace["embed.tokens"]
    eps = 1e-6
    for j in (0, 3):
        step = np.zeros_like(e)
        step[0, j] = x[0, j]  # move token j's embedding along itself
        hi = objective(model(ids, patch={"embed.sum": e + eps * step}))[0][0]
        lo = objective(model(ids, patch={"embed.sum": e - eps * step}))[0][0]
        assert scores[j] == pytest.approx((hi - lo) / (2 * eps), rel=1e-6)


def test_integrated_gradients_completeness(model):
    objective = class_logit(head(), classes=3, position=2)
    ids, baseline = IDS[0], np.zeros(6, dtype=int)
    result = integrated_gradients(model, ids, objective, baseline, steps=50)
    assert result.output == pytest.approx(objective(model(ids))[0][0])
    assert result.baseline_output == pytest.approx(objective(model(baseline))[0][0])
    assert result.relative_delta < 0.01, result
    coarse = integrated_gradients(model, ids, objective, baseline, steps=2)
    assert abs(coarse.delta) > abs(result.delta)
    masked = integrated_gradients(model, IDS[1], objective, np.zeros(6, int), MASK[1], steps=50)
    assert masked.relative_delta < 0.01
    with pytest.raises(ValueError, match="baseline_ids must have the input's shape"):
        integrated_gradients(model, ids, objective, [0, 0])
    with pytest.raises(ValueError, match="one sequence"):
        integrated_gradients(model, IDS, objective, IDS)


# ------------------------------------------------------------------ Spearman


def test_rank_and_spearman():
    assert rank([10, 30, 20, 20]).tolist() == [1.0, 4.0, 2.5, 2.5]
    assert spearman([1, 2, 3, 4], [10, 20, 30, 400]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    # textbook: d = rank differences, rho = 1 - 6 sum d^2 / (n (n^2 - 1)) without ties
    a, b = [3, 1, 4, 2, 5], [2, 1, 5, 3, 4]
    d = rank(a) - rank(b)
    assert spearman(a, b) == pytest.approx(1 - 6 * (d**2).sum() / (5 * 24))
    with pytest.raises(ValueError, match="a is constant"):
        spearman([1, 1, 1], [1, 2, 3])


def test_relevance_vs_occlusion_runs_per_example(model):
    clf = head()
    agreement = relevance_vs_occlusion(
        model, IDS, lambda b: (class_logit(clf, classes=1, position=0), 0), MASK, replace_with=0
    )
    assert set(agreement.rho) == {"raw", "rollout", "flow"}
    assert all(v.shape == (2,) for v in agreement.rho.values())
    assert "rollout" in agreement.table()
    first = relevance_vs_occlusion(
        model, IDS, lambda b: (class_logit(clf, classes=1, position=0), 0), MASK, layer=0
    )
    np.testing.assert_allclose(first.rho["flow"], first.rho["rollout"])  # equal after 1 layer
