"""The model runs the textbook functions a student reads: the exported attention and LayerNorm
in the forward pass, their exported backward functions in the backward pass.

Each test replaces one exported function, where the encoder (or the backward pass) looks it up,
by a spy: the spy that returns what the function returns changes nothing and is called once per
use; the spy that changes the result changes the model's output (or gradients). A model that
computed attention or LayerNorm on its own would pass neither.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

import minitransformer
from minitransformer import Encoder, EncoderConfig, backward
from minitransformer import attention as attention_module
from minitransformer import backprop as backprop_module
from minitransformer import encoder as encoder_module
from minitransformer import functional as functional_module

CONFIG = EncoderConfig(
    vocab_size=11, d_model=8, n_heads=2, n_layers=2, d_ff=12, max_len=8, dtype="float64"
)
IDS = [[1, 2, 3, 4], [5, 6, 7, 0]]
MASK = [[1, 1, 1, 1], [1, 1, 1, 0]]


def spy(monkeypatch, module, name, change=None):
    """Replace ``module.name`` by a function that counts its calls and returns the original's
    result, passed through ``change`` when given. Returns the list of calls."""
    original = getattr(module, name)
    calls = []

    def wrapper(*args, **kwargs):
        calls.append(kwargs.get("name"))
        result = original(*args, **kwargs)
        return result if change is None else change(result)

    monkeypatch.setattr(module, name, wrapper)
    return calls


def test_the_encoder_calls_the_exported_functions_themselves():
    assert (
        encoder_module.scaled_dot_product_attention is minitransformer.scaled_dot_product_attention
    )
    assert encoder_module.layer_norm is minitransformer.layer_norm
    backward_of = backprop_module.scaled_dot_product_attention_backward
    assert backward_of is attention_module.scaled_dot_product_attention_backward
    assert backprop_module.layer_norm_backward is functional_module.layer_norm_backward


@pytest.mark.parametrize("norm", ["post", "pre"])
def test_the_forward_pass_runs_scaled_dot_product_attention(monkeypatch, norm):
    model = Encoder(replace(CONFIG, norm=norm), seed=0)
    hidden, trace = model.run_with_trace(IDS, MASK)
    calls = spy(monkeypatch, encoder_module, "scaled_dot_product_attention")
    again, traced_again = model.run_with_trace(IDS, MASK)
    assert calls == ["blocks.0.attn", "blocks.1.attn"]  # one call per block, named for the trace
    np.testing.assert_array_equal(again, hidden)
    for name in trace:
        np.testing.assert_array_equal(traced_again[name], trace[name], err_msg=name)

    def doubled(result):
        out, weights, scores = result
        return 2 * out, weights, scores

    spy(monkeypatch, encoder_module, "scaled_dot_product_attention", doubled)
    changed, changed_trace = model.run_with_trace(IDS, MASK)
    assert not np.allclose(changed, hidden)
    np.testing.assert_allclose(changed_trace["blocks.0.attn.z"], 2 * trace["blocks.0.attn.z"])


@pytest.mark.parametrize("norm", ["post", "pre"])
def test_the_forward_pass_runs_layer_norm(monkeypatch, norm):
    config = replace(CONFIG, norm=norm, embed_layer_norm=True)
    model = Encoder(config, seed=0)
    hidden = model(IDS, MASK)
    calls = spy(monkeypatch, encoder_module, "layer_norm")
    np.testing.assert_array_equal(model(IDS, MASK), hidden)
    final = ["final_ln"] if norm == "pre" else []
    expected = ["embed.ln", "blocks.0.ln1", "blocks.0.ln2", "blocks.1.ln1", "blocks.1.ln2"]
    assert calls == expected + final
    spy(monkeypatch, encoder_module, "layer_norm", lambda out: out + 1.0)
    assert not np.allclose(model(IDS, MASK), hidden)


def test_the_backward_pass_runs_the_exported_backward_functions(monkeypatch):
    model = Encoder(CONFIG, seed=0)
    hidden, trace = model.run_with_trace(IDS, MASK)
    R = np.random.default_rng(0).standard_normal(hidden.shape)
    grads = backward(model, trace, R)
    attention_calls = spy(monkeypatch, backprop_module, "scaled_dot_product_attention_backward")
    norm_calls = spy(monkeypatch, backprop_module, "layer_norm_backward")
    again = backward(model, trace, R)
    assert attention_calls == ["blocks.1.attn", "blocks.0.attn"]  # last block first
    assert len(norm_calls) == 4  # ln2 and ln1 of each block
    for name in model.params:
        np.testing.assert_array_equal(again.params[name], grads.params[name], err_msg=name)

    def no_query_gradient(result):
        grad_q, grad_k, grad_v = result
        return np.zeros_like(grad_q), grad_k, grad_v

    monkeypatch.undo()
    spy(monkeypatch, backprop_module, "scaled_dot_product_attention_backward", no_query_gradient)
    changed = backward(model, trace, R)
    assert np.all(changed.params["blocks.0.attn.W_Q"] == 0)
    assert not np.all(grads.params["blocks.0.attn.W_Q"] == 0)
