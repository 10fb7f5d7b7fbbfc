"""The forward-pass hooks interpretability needs: head mask (Michel et al.'s gates) with its
gradient dL/dhead_mask, activation patching of named trace entries, and dL/d attention weights.

Gradients are checked against central finite differences (float64) and torch autograd.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from minitransformer.backprop import backward
from minitransformer.config import EncoderConfig
from minitransformer.encoder import Encoder
from minitransformer.patching import PATCHABLE
from minitransformer.trace import expected_names, template_of
from tests.conftest import make_encoder

CONFIGS = {
    "post": EncoderConfig(
        vocab_size=11, d_model=8, n_heads=2, n_layers=2, d_ff=12, max_len=8,
        positional="learned", dtype="float64",
    ),
    "pre": EncoderConfig(
        vocab_size=11, d_model=8, n_heads=2, n_layers=2, d_ff=12, max_len=8,
        norm="pre", activation="gelu", dtype="float64",
    ),
}  # fmt: skip
IDS = np.array([[1, 4, 2, 7, 3], [5, 5, 9, 0, 0]])
MASK = np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])


def loss_of(hidden: np.ndarray, R: np.ndarray) -> float:
    return float((hidden * R).sum())


@pytest.mark.parametrize("name", list(CONFIGS))
def test_head_mask_of_ones_changes_nothing_and_zero_equals_zeroing_z(name):
    model = make_encoder(CONFIGS[name])
    plain = model(IDS, MASK)
    np.testing.assert_array_equal(model(IDS, MASK, head_mask=np.ones((2, 2))), plain)
    head_mask = np.ones((2, 2))
    head_mask[1, 0] = 0.0

    def zero_head_0(z):
        z = z.copy()
        z[:, 0] = 0.0
        return z

    masked = model(IDS, MASK, head_mask=head_mask)
    patched = model(IDS, MASK, patch={"blocks.1.attn.z": zero_head_0})
    np.testing.assert_allclose(masked, patched, atol=1e-12)
    assert np.abs(masked - plain).max() > 1e-3  # removing the head did change the output


@pytest.mark.parametrize("name", list(CONFIGS))
def test_head_mask_gradient_matches_finite_differences(name):
    model = make_encoder(CONFIGS[name], seed=1)
    R = np.random.default_rng(0).standard_normal((2, 5, 8))
    head_mask = np.array([[1.0, 0.7], [0.3, 1.2]])
    hidden, trace = model.run_with_trace(IDS, MASK, head_mask=head_mask)
    grads = backward(model, trace, R)
    assert grads.head_mask.shape == (2, 2, 2)  # (B, L, H): per sequence
    eps = 1e-6
    for l in range(2):
        for h in range(2):
            for b in range(2):  # each sequence's own head mask: only its loss term moves
                up, down = head_mask.copy(), head_mask.copy()
                up[l, h] += eps
                down[l, h] -= eps
                f_up = loss_of(model(IDS[b : b + 1], MASK[b : b + 1], head_mask=up), R[b : b + 1])
                f_dn = loss_of(model(IDS[b : b + 1], MASK[b : b + 1], head_mask=down), R[b : b + 1])
                assert grads.head_mask[b, l, h] == pytest.approx(
                    (f_up - f_dn) / (2 * eps), rel=1e-6, abs=1e-8
                )


def test_attention_weights_gradient_matches_finite_differences_through_a_patch():
    model = make_encoder(CONFIGS["post"], seed=2)
    R = np.random.default_rng(1).standard_normal((2, 5, 8))
    _, trace = model.run_with_trace(IDS, MASK)
    grads = backward(model, trace, R)
    eps = 1e-6
    for l, (b, h, i, j) in [(0, (0, 1, 2, 3)), (1, (1, 0, 1, 2)), (1, (0, 0, 4, 0))]:

        def nudge(weights, step, b=b, h=h, i=i, j=j):
            weights = weights.copy()
            weights[b, h, i, j] += step
            return weights

        name = f"blocks.{l}.attn.weights"
        f_up = loss_of(model(IDS, MASK, patch={name: lambda w, n=nudge: n(w, eps)}), R)
        f_dn = loss_of(model(IDS, MASK, patch={name: lambda w, n=nudge: n(w, -eps)}), R)
        assert grads.attn_weights[l][b, h, i, j] == pytest.approx(
            (f_up - f_dn) / (2 * eps), rel=1e-6, abs=1e-8
        )


@pytest.mark.parametrize("name", list(CONFIGS))
def test_head_mask_and_attention_gradients_match_torch_autograd(name):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    cfg = CONFIGS[name]
    model = make_encoder(cfg, seed=3)
    R = np.random.default_rng(2).standard_normal((2, 5, 8))
    head_mask = np.array([[0.5, 1.0], [1.0, 0.0]])
    hidden, trace = model.run_with_trace(IDS, MASK, head_mask=head_mask)
    grads = backward(model, trace, R)

    P = {n: torch.tensor(v, requires_grad=True) for n, v in model.params.items()}
    per_sequence = torch.tensor(np.broadcast_to(head_mask, (2, 2, 2)).copy(), requires_grad=True)
    B, S, D, H = 2, 5, 8, 2
    allowed = torch.from_numpy(MASK == 1)[:, None, None, :]

    def ln(x, prefix):
        return F.layer_norm(x, (D,), P[f"{prefix}.gamma"], P[f"{prefix}.beta"], cfg.layer_norm_eps)

    def lin(x, W, b):
        return x @ P[W] + P[b]

    weights_seen = []

    def attention(x, l):
        b = f"blocks.{l}"
        q, k, v = (
            lin(x, f"{b}.attn.W_{n}", f"{b}.attn.b_{n}").view(B, S, H, D // H).transpose(1, 2)
            for n in "QKV"
        )
        scores = (q @ k.transpose(-1, -2) / math.sqrt(D // H)).masked_fill(~allowed, -math.inf)
        weights = torch.softmax(scores, dim=-1)
        weights.retain_grad()
        weights_seen.append(weights)
        z = (weights @ v) * per_sequence[:, l, :, None, None]  # each head scaled by its mask
        return lin(z.transpose(1, 2).reshape(B, S, D), f"{b}.attn.W_O", f"{b}.attn.b_O")

    act = F.relu if cfg.activation == "relu" else F.gelu
    x = P["embed.W_E"][torch.from_numpy(IDS)] + torch.from_numpy(trace["embed.positions"].copy())
    for l in range(2):
        b = f"blocks.{l}"

        def ffn(h, b=b):
            return lin(act(lin(h, f"{b}.ffn.W_1", f"{b}.ffn.b_1")), f"{b}.ffn.W_2", f"{b}.ffn.b_2")

        if cfg.norm == "post":
            h = ln(x + attention(x, l), f"{b}.ln1")
            x = ln(h + ffn(h), f"{b}.ln2")
        else:
            h = x + attention(ln(x, f"{b}.ln1"), l)
            x = h + ffn(ln(h, f"{b}.ln2"))
    if cfg.norm == "pre":
        x = ln(x, "final_ln")
    np.testing.assert_allclose(x.detach().numpy(), hidden, atol=1e-12)
    (x * torch.from_numpy(R)).sum().backward()
    np.testing.assert_allclose(grads.head_mask, per_sequence.grad.numpy(), atol=1e-10)
    for l in range(2):
        np.testing.assert_allclose(grads.attn_weights[l], weights_seen[l].grad.numpy(), atol=1e-10)


def test_backward_reads_the_head_mask_of_the_forward_pass_from_the_trace():
    model = make_encoder(CONFIGS["post"])
    head_mask = np.array([[1.0, 0.0], [1.0, 1.0]])
    hidden, trace = model.run_with_trace(IDS, MASK, head_mask=head_mask)
    np.testing.assert_array_equal(trace.head_mask, head_mask)
    grads = backward(model, trace, np.ones_like(hidden))
    # the removed head (block 0, head 1, gated by 0) passes no gradient to its value columns
    assert np.all(grads.params["blocks.0.attn.W_V"][:, 4:] == 0)
    assert np.any(grads.params["blocks.0.attn.W_V"][:, :4] != 0)
    _, patched = model.run_with_trace(IDS, MASK, patch={"blocks.0.attn.concat": lambda c: 2 * c})
    with pytest.raises(ValueError, match="do not patch attn.concat"):
        backward(model, patched, np.ones_like(hidden))
    with pytest.raises(ValueError, match=r"head_mask must have shape \(n_layers, n_heads\)"):
        model(IDS, head_mask=np.ones(2))
    with pytest.raises(TypeError, match="head_mask must hold numbers"):
        model(IDS, head_mask=np.ones((2, 2), dtype=bool))


def test_patching_a_block_output_from_another_input_gives_that_inputs_output():
    model = make_encoder(CONFIGS["pre"])
    other = np.array([[2, 2, 8, 1, 6], [3, 1, 4, 1, 5]])
    _, source = model.run_with_trace(other)
    patched, trace = model.run_with_trace(IDS, patch={"blocks.1.out": source["blocks.1.out"]})
    np.testing.assert_allclose(patched, model(other), atol=1e-12)
    np.testing.assert_array_equal(trace["blocks.1.out"], source["blocks.1.out"])  # recorded
    # an early patch moves every later entry, and only the patched heads' z differ
    _, clean = model.run_with_trace(IDS)
    patch_head = {
        "blocks.0.attn.z": lambda z: np.concatenate([z[:, :1], source["attn.z", 0][:, 1:]], 1)
    }
    _, half = model.run_with_trace(IDS, patch=patch_head)
    np.testing.assert_array_equal(half["attn.z", 0][:, 0], clean["attn.z", 0][:, 0])
    np.testing.assert_array_equal(half["attn.z", 0][:, 1], source["attn.z", 0][:, 1])
    assert not np.allclose(half["blocks.1.out"], clean["blocks.1.out"])


@pytest.mark.parametrize("norm", ["post", "pre"])
def test_every_patchable_name_is_read_back_and_the_others_are_not(norm):
    cfg = EncoderConfig(
        vocab_size=11, d_model=8, n_heads=2, n_layers=2, d_ff=12, max_len=8, norm=norm,
        positional="learned", embed_layer_norm=True, type_vocab_size=2, dtype="float64",
    )  # fmt: skip
    model = make_encoder(cfg)
    recorded = expected_names(cfg)
    names = [n for n in recorded if template_of(n) in PATCHABLE]
    not_patchable = {n.rsplit(".", 1)[-1] for n in recorded if n not in names}
    assert not_patchable == {"mean", "std"}  # recorded for the backward pass only
    plain = model(IDS)
    for name in names:
        if name.endswith("attn.mask"):  # hide key 0 from every query
            moved = model(IDS, patch={name: lambda m: m & (np.arange(5) > 0)})
        else:  # a different nudge per entry: LayerNorm ignores 1.5 x + 0.5, softmax ignores k + c
            moved = model(
                IDS, patch={name: lambda x: x + np.cos(np.arange(x.size)).reshape(x.shape)}
            )
        assert not np.allclose(moved, plain), name


def test_patch_errors_name_the_entry():
    model = make_encoder(CONFIGS["post"])
    with pytest.raises(ValueError, match="cannot be patched"):
        model(IDS, patch={"blocks.0.ln1.std": np.ones((2, 5, 1))})
    with pytest.raises(ValueError, match="not recorded by this model"):
        model(IDS, patch={"blocks.7.attn.z": np.zeros(1)})
    with pytest.raises(
        ValueError, match=r"patch for 'blocks.0.attn.z' must have shape \(2, 2, 5, 4\)"
    ):
        model(IDS, patch={"blocks.0.attn.z": np.zeros((2, 5, 4))})
    with pytest.raises(TypeError, match="patch must be a mapping"):
        model(IDS, patch=[("blocks.0.attn.z", 0)])


def test_integrated_gradients_path_through_a_patched_embed_sum_has_the_right_gradient():
    model = make_encoder(CONFIGS["pre"], seed=4)
    R = np.random.default_rng(3).standard_normal((2, 5, 8))
    _, clean = model.run_with_trace(IDS, MASK)
    x = clean["embed.sum"] * 0.6
    _, trace = model.run_with_trace(IDS, MASK, patch={"embed.sum": x})
    g = backward(model, trace, R).embeddings
    E = np.random.default_rng(4).standard_normal(x.shape)
    eps = 1e-6
    f_up = loss_of(model(IDS, MASK, patch={"embed.sum": x + eps * E}), R)
    f_dn = loss_of(model(IDS, MASK, patch={"embed.sum": x - eps * E}), R)
    assert (g * E).sum() == pytest.approx((f_up - f_dn) / (2 * eps), rel=1e-6)


def test_encoder_class_signature_unchanged_for_plain_use():
    model = Encoder(EncoderConfig(vocab_size=10, d_model=8, n_heads=2), seed=0)
    hidden, trace = model.run_with_trace([1, 2, 3])
    assert hidden.shape == (1, 3, 8)
    assert trace.names() == expected_names(model.config)
