"""Answers for notebook 12: backpropagation through attention and layer norm, one training step."""

import math

import numpy as np

from minitransformer.heads import cross_entropy


def softmax_backward(grad_out, weights):
    """Exercise 12.1: ``dL/dscores = w * (g - sum(g * w))`` over the last axis.

    grad_out, weights : ndarray of shape (..., S_k); weights = softmax(scores).
    """
    weighted_mean = (grad_out * weights).sum(axis=-1, keepdims=True)  # (..., 1)
    return weights * (grad_out - weighted_mean)


def attention_backward(grad_out, q, k, v, weights):
    """Exercise 12.2: the gradients of ``out = softmax(q k^T / sqrt(d)) @ v``.

    grad_out : (..., S_q, Dv); q : (..., S_q, d); k : (..., S_k, d); v : (..., S_k, Dv);
    weights : (..., S_q, S_k). Returns (grad_q, grad_k, grad_v).
    """
    grad_v = weights.swapaxes(-1, -2) @ grad_out  # (..., S_k, S_q) @ (..., S_q, Dv)
    grad_weights = grad_out @ v.swapaxes(-1, -2)  # (..., S_q, Dv) @ (..., Dv, S_k)
    grad_scores = softmax_backward(grad_weights, weights)  # (..., S_q, S_k)
    scale = 1 / math.sqrt(q.shape[-1])
    grad_q = grad_scores @ k * scale  # (..., S_q, S_k) @ (..., S_k, d)
    grad_k = grad_scores.swapaxes(-1, -2) @ q * scale  # (..., S_k, S_q) @ (..., S_q, d)
    return grad_q, grad_k, grad_v


def layer_norm_backward(grad_out, x, gamma, eps=1e-5):
    """Exercise 12.3: the gradients of ``y = gamma * (x - mean) / sqrt(var + eps) + beta``.

    grad_out, x : (..., D); gamma : (D,). Returns (grad_x, grad_gamma, grad_beta).
    """
    mean = x.mean(axis=-1, keepdims=True)
    std = np.sqrt(x.var(axis=-1, keepdims=True) + eps)  # biased variance, eps inside
    x_hat = (x - mean) / std
    g_hat = grad_out * gamma  # the gradient reaching x_hat
    grad_x = (
        g_hat
        - g_hat.mean(axis=-1, keepdims=True)  # every input moves the mean
        - x_hat * (g_hat * x_hat).mean(axis=-1, keepdims=True)  # ... and the std
    ) / std
    D = x.shape[-1]
    grad_gamma = (grad_out * x_hat).reshape(-1, D).sum(axis=0)  # shared by every token
    grad_beta = grad_out.reshape(-1, D).sum(axis=0)
    return grad_x, grad_gamma, grad_beta


def train_step(model, classifier, batch, optimizer):
    """Exercise 12.4: forward, loss, backward through the head and the encoder, AdamW step.

    Returns the loss of the batch before the update.
    """
    hidden, trace = model.run_with_trace(batch.token_ids, batch.mask)
    logits = classifier(hidden, batch.mask)
    loss, grad_logits = cross_entropy(logits, batch.targets)
    grad_head, grad_hidden = classifier.backward(grad_logits, hidden, batch.mask)
    grads = model.backward(trace, grad_hidden, batch.token_ids).params
    grads.update({"head." + name: grad for name, grad in grad_head.items()})
    optimizer.step(grads)
    return loss
