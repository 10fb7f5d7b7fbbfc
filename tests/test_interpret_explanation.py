"""Is attention an explanation? Uniform attention (forward, exact backward, retraining), the
twin task's seeds, and the agreement of token rankings."""

from __future__ import annotations

import numpy as np
import pytest

from minitransformer.backprop import backward
from minitransformer.config import EncoderConfig
from minitransformer.encoder import Encoder
from minitransformer.heads import Classifier
from minitransformer.interpret.compare import spearman
from minitransformer.interpret.explanation import (
    RANKING_METHODS,
    UniformAttentionResult,
    compare_rankings,
    train_with_uniform_attention,
    twin_analysis,
    twin_table,
    uniform_attention,
    uniform_attention_accuracy,
    uniform_attention_patch,
    uniform_attention_table,
)
from minitransformer.interpret.objectives import class_logit
from minitransformer.tasks import get_task
from minitransformer.toy_models import load_toy_model
from minitransformer.training import held_out, loss_and_grads, parameters
from tests.conftest import make_encoder

CONFIG = EncoderConfig(vocab_size=10, d_model=8, n_heads=2, n_layers=2, d_ff=12, max_len=6,
                       positional="learned", dtype="float64")  # fmt: skip
MASK = np.array([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]], bool)
IDS = np.array([[3, 1, 4, 1, 0, 0], [5, 9, 2, 6, 5, 3]])


def test_uniform_attention_reads_every_real_key_equally():
    A = uniform_attention(MASK, CONFIG)
    assert A.shape == (2, 2, 6, 6)
    np.testing.assert_allclose(A.sum(-1), 1.0)
    np.testing.assert_allclose(A[0, 1, 2], [0.25, 0.25, 0.25, 0.25, 0, 0])
    np.testing.assert_allclose(A[0, 0, 5], [0.25, 0.25, 0.25, 0.25, 0, 0])  # padding row
    np.testing.assert_allclose(A[1], 1 / 6)
    causal = uniform_attention(MASK, EncoderConfig(vocab_size=10, d_model=8, causal=True))
    np.testing.assert_allclose(causal[1, 0, 2], [1 / 3, 1 / 3, 1 / 3, 0, 0, 0], rtol=1e-6)
    # a head with constant scores (W_Q = W_K = 0 and no biases) computes exactly these weights
    model = make_encoder(CONFIG)
    for name in ("W_Q", "W_K", "b_Q", "b_K"):
        model.params[f"blocks.0.attn.{name}"][...] = 0.0
    _, trace = model.run_with_trace(IDS, MASK)
    np.testing.assert_allclose(trace["blocks.0.attn.weights"], A, atol=1e-12)
    with pytest.raises(ValueError, match="real token in every row"):
        uniform_attention(np.zeros((1, 3)), CONFIG)


def test_backward_holds_patched_weights_constant_matching_finite_differences():
    model = make_encoder(CONFIG, seed=1)
    patch = uniform_attention_patch(MASK, CONFIG)
    R = np.random.default_rng(0).standard_normal((2, 6, CONFIG.d_model))

    def loss() -> float:  # L = sum(hidden * R) of the patched forward pass
        return float((model(IDS, MASK, patch=patch) * R).sum())

    _, trace = model.run_with_trace(IDS, MASK, patch=patch)
    grads = backward(model, trace, R, constants=list(patch))
    for name in ("blocks.0.attn.W_Q", "blocks.1.attn.W_K", "blocks.1.attn.b_Q"):
        np.testing.assert_array_equal(grads.params[name], 0.0)  # no path to q, k
    rng = np.random.default_rng(1)
    for name in ("blocks.0.attn.W_V", "blocks.0.ffn.W_1", "blocks.1.attn.W_O", "embed.W_E",
                 "embed.W_pos", "blocks.1.ln1.gamma"):  # fmt: skip
        p = model.params[name]
        for _ in range(3):
            index = tuple(rng.integers(0, n) for n in p.shape)
            original = p[index]
            p[index] = original + 1e-6
            up = loss()
            p[index] = original - 1e-6
            down = loss()
            p[index] = original
            numeric = (up - down) / 2e-6
            assert grads.params[name][index] == pytest.approx(numeric, rel=1e-5, abs=1e-8), name
    # without constants=, the softmax's backward runs on weights it did not compute: wrong
    wrong = backward(model, trace, R)
    assert np.abs(wrong.params["blocks.0.attn.W_Q"]).max() > 1e-3
    with pytest.raises(ValueError, match="constants may only name attention weights"):
        backward(model, trace, R, constants=["blocks.0.attn.scores"])


def test_training_gradient_with_uniform_attention_is_exact():
    config = EncoderConfig(vocab_size=12, d_model=8, n_heads=2, n_layers=1, d_ff=8,
                           max_len=12, positional="learned", dtype="float64")  # fmt: skip
    model = Encoder(config, seed=0)
    classifier = Classifier(8, 12, seed=1, dtype="float64")
    batch = get_task("shift").generate(3, seed=0)

    def patch(b):
        return uniform_attention_patch(b.mask, config)

    _, _, grads = loss_and_grads(model, classifier, batch, training=False, patch=patch)
    np.testing.assert_array_equal(grads["blocks.0.attn.W_K"], 0.0)
    params = parameters(model, classifier)
    for name in ("head.W", "blocks.0.attn.W_V", "embed.W_pos"):
        index = (1, 2)
        original = params[name][index]
        losses = []
        for delta in (1e-6, -1e-6):
            params[name][index] = original + delta
            losses.append(loss_and_grads(model, classifier, batch, False, patch=patch)[0])
        params[name][index] = original
        numeric = (losses[0] - losses[1]) / 2e-6
        assert grads[name][index] == pytest.approx(numeric, rel=1e-5, abs=1e-9), name


def test_histogram_survives_uniform_attention_and_reverse_does_not():
    task = get_task("histogram")
    model, classifier, history = train_with_uniform_attention(task, steps=800)
    fresh = Encoder(task.config, seed=0)  # the same initial weights
    np.testing.assert_array_equal(model.params["blocks.0.attn.W_Q"],
                                  fresh.params["blocks.0.attn.W_Q"])  # fmt: skip
    assert uniform_attention_accuracy(model, classifier, held_out(task)) > 0.97
    assert history.val_acc[-1] > 0.97  # validation ran with uniform attention too
    model, classifier, _ = train_with_uniform_attention("reverse", steps=300)
    assert uniform_attention_accuracy(model, classifier, held_out("reverse")) < 0.5
    shipped, shipped_head, _ = load_toy_model("reverse")  # learned attention: solved
    assert uniform_attention_accuracy(shipped, shipped_head, held_out("reverse")) < 0.5
    table = uniform_attention_table([UniformAttentionResult("reverse", 300, 1.0, 0.3)])
    assert "reverse" in table and "30%" in table


def test_twin_seeds_attend_oppositely_while_occlusion_finds_the_twin():
    avoid = twin_analysis(*load_toy_model("twin", 0)[:2], seed=0, n=4)
    attend = twin_analysis(*load_toy_model("twin", 4)[:2], seed=4, n=4)
    for r in (avoid, attend):
        assert r.accuracy > 0.99
        assert r.occlusion_first >= 0.6  # replacing the twin by padding breaks the pair
    assert avoid.attention_on_twin < 0.1 and attend.attention_on_twin > 0.8
    assert avoid.attention_first < 0.1 and attend.attention_first > 0.9
    hidden_key = twin_analysis(*load_toy_model("twin", 0)[:2], n=2, occlude_with=None)
    assert hidden_key.occlusion_first < 0.2  # hiding a key it never reads changes nothing
    assert twin_table([avoid, attend]).splitlines()[1].split()[:2] == ["0", "1.000"]


def test_compare_rankings_is_a_symmetric_spearman_matrix():
    model, classifier, task = load_toy_model("pointer")
    data = held_out(task, 6)

    def objective_of(b):
        return class_logit(classifier, data.targets[b, 6], 6), 6

    agreement = compare_rankings(model, data.token_ids, objective_of, data.mask)
    assert agreement.methods == RANKING_METHODS
    assert agreement.rho.shape == (6, 4, 4)
    np.testing.assert_allclose(agreement.rho, agreement.rho.transpose(0, 2, 1))
    np.testing.assert_allclose(agreement.rho[:, range(4), range(4)], 1.0)
    assert np.nanmax(np.abs(agreement.rho)) <= 1.0 + 1e-12
    from minitransformer.interpret.attribution import occlusion

    _, trace = model.run_with_trace(data.token_ids[:1], keep="*.attn.weights")
    attention = trace["blocks.0.attn.weights"][0].mean(0)[6]
    scores = occlusion(model, data.token_ids[0], objective_of(0)[0])
    assert agreement.rho[0, 0, 3] == pytest.approx(spearman(attention, scores))
    lines = agreement.table().splitlines()
    assert lines[0].split()[0] == "attention" and len(lines) == 5
    with pytest.raises(ValueError, match="baseline_ids"):
        compare_rankings(model, data.token_ids, objective_of, baseline_ids=np.zeros((1, 7)))
