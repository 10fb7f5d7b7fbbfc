"""The classification head and cross-entropy: against PyTorch, finite differences, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from minitransformer.heads import (
    Classifier,
    accuracy,
    cross_entropy,
    log_softmax,
    pool,
    pool_backward,
)


@pytest.mark.parametrize("shape", [(7,), (3, 5), (2, 4, 3)])
def test_cross_entropy_matches_torch(torch, shape):
    F = torch.nn.functional
    rng = np.random.default_rng(0)
    C = 6
    logits = rng.standard_normal((*shape, C)) * 3
    targets = rng.integers(0, C, size=shape)
    targets.flat[::3] = -100  # some ignored
    loss, grad = cross_entropy(logits, targets)

    z = torch.tensor(logits, requires_grad=True)
    ref = F.cross_entropy(z.reshape(-1, C), torch.tensor(targets).reshape(-1), ignore_index=-100)
    ref.backward()
    assert abs(loss - ref.item()) <= 1e-10
    np.testing.assert_allclose(grad, z.grad.numpy(), rtol=0, atol=1e-10)
    assert np.all(grad[targets == -100] == 0)


def test_cross_entropy_custom_ignore_index_and_extreme_logits():
    logits = np.array([[1000.0, -1000.0, 0.0], [0.0, 0.0, 0.0]])
    loss, grad = cross_entropy(logits, np.array([0, 7]), ignore_index=7)
    assert loss == pytest.approx(0.0) and np.all(np.isfinite(grad))
    loss, _ = cross_entropy(logits, np.array([1, 7]), ignore_index=7)
    assert loss == pytest.approx(2000.0)


def test_cross_entropy_bad_input():
    with pytest.raises(ValueError, match=r"targets must have shape \(2,\)"):
        cross_entropy(np.zeros((2, 3)), np.zeros(3, dtype=int))
    with pytest.raises(ValueError, match=r"targets must be in \[0, 3\)"):
        cross_entropy(np.zeros((2, 3)), np.array([0, 3]))
    with pytest.raises(ValueError, match="every target is ignore_index"):
        cross_entropy(np.zeros((2, 3)), np.array([-100, -100]))
    with pytest.raises(TypeError, match="targets must be integers"):
        cross_entropy(np.zeros((2, 3)), np.array([0.0, 1.0]))


def test_accuracy_skips_ignored():
    logits = np.array([[0.0, 1.0], [1.0, 0.0], [1.0, 0.0]])
    assert accuracy(logits, np.array([1, 1, -100])) == 0.5


def test_pooling_values():
    hidden = np.arange(2 * 3 * 2, dtype=float).reshape(2, 3, 2)
    mask = np.array([[1, 1, 0], [1, 1, 1]], dtype=bool)
    np.testing.assert_array_equal(pool(hidden, mask, "first"), hidden[:, 0])
    np.testing.assert_allclose(pool(hidden, mask, "mean")[0], hidden[0, :2].mean(axis=0))
    np.testing.assert_allclose(pool(hidden, mask, "mean")[1], hidden[1].mean(axis=0))
    np.testing.assert_allclose(pool(hidden, None, "mean"), hidden.mean(axis=1))
    assert pool(hidden, mask, "token") is hidden
    g = pool_backward(np.ones((2, 2)), mask, "mean", 3)
    np.testing.assert_allclose(g[0, :, 0], [0.5, 0.5, 0.0])  # padding gets no gradient


@pytest.mark.parametrize("pooling", ["token", "first", "mean"])
def test_classifier_matches_torch(torch, pooling):
    F = torch.nn.functional
    rng = np.random.default_rng(1)
    B, S, D, C = 3, 5, 4, 3
    head = Classifier(D, C, pooling=pooling, seed=2, dtype="float64")
    head.params["b"] = rng.standard_normal(C)
    hidden = rng.standard_normal((B, S, D))
    mask = np.arange(S)[None, :] < np.array([5, 3, 1])[:, None]
    logits = head(hidden, mask)
    target_shape = (B, S) if pooling == "token" else (B,)
    targets = rng.integers(0, C, size=target_shape)
    loss, grad_logits = cross_entropy(logits, targets)
    grads, grad_hidden = head.backward(grad_logits, hidden, mask)

    h = torch.tensor(hidden, requires_grad=True)
    W = torch.tensor(head.params["W"], requires_grad=True)
    b = torch.tensor(head.params["b"], requires_grad=True)
    m = torch.tensor(mask, dtype=torch.float64)
    if pooling == "token":
        x = h
    elif pooling == "first":
        x = h[:, 0]
    else:
        x = (h * m[..., None]).sum(1) / m.sum(1, keepdim=True)
    z = x @ W + b
    ref = F.cross_entropy(z.reshape(-1, C), torch.tensor(targets).reshape(-1))
    ref.backward()
    np.testing.assert_allclose(logits, z.detach().numpy(), atol=1e-12)
    assert abs(loss - ref.item()) <= 1e-10
    np.testing.assert_allclose(grads["W"], W.grad.numpy(), atol=1e-12)
    np.testing.assert_allclose(grads["b"], b.grad.numpy(), atol=1e-12)
    np.testing.assert_allclose(grad_hidden, h.grad.numpy(), atol=1e-12)
    if pooling == "mean":
        assert np.all(grad_hidden[~mask] == 0)


def test_classifier_shapes_and_dtype():
    head = Classifier(8, 3)
    assert head.params["W"].dtype == np.float32 and head.params["W"].shape == (8, 3)
    assert head(np.zeros((2, 4, 8), np.float32)).shape == (2, 4, 3)
    assert Classifier(8, 3, pooling="first")(np.zeros((2, 4, 8))).shape == (2, 3)
    assert "pooling='token'" in repr(head)


def test_classifier_bad_input():
    with pytest.raises(ValueError, match="pooling must be one of"):
        Classifier(8, 3, pooling="max")
    with pytest.raises(ValueError, match="n_classes must be a positive int"):
        Classifier(8, 0)
    with pytest.raises(ValueError, match=r"parameter 'W' has shape \(8, 2\), expected \(8, 3\)"):
        Classifier(8, 3, params={"W": np.zeros((8, 2)), "b": np.zeros(3)})
    head = Classifier(8, 3, pooling="mean")
    with pytest.raises(ValueError, match=r"hidden must have shape \(batch, seq, 8\)"):
        head(np.zeros((2, 4, 7)))
    with pytest.raises(ValueError, match=r"mask must have the token ids' shape \(2, 4\)"):
        head(np.zeros((2, 4, 8)), np.ones((2, 5), dtype=int))
    with pytest.raises(ValueError, match="no real token"):
        head(np.zeros((2, 4, 8)), np.array([[1, 0, 0, 0], [0, 0, 0, 0]]))


def test_log_softmax_matches_torch(torch):
    F = torch.nn.functional
    z = np.random.default_rng(3).standard_normal((4, 7)) * 50
    np.testing.assert_allclose(
        log_softmax(z), F.log_softmax(torch.tensor(z), -1).numpy(), atol=1e-12
    )
