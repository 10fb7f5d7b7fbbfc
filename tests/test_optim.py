"""Adam, AdamW and gradient clipping against PyTorch; the warm-up + cosine schedule's shape."""

from __future__ import annotations

import math

import numpy as np
import pytest

from minitransformer.optim import Adam, AdamW, clip_grad_norm, global_norm, warmup_cosine_lr

SHAPES = {"W": (4, 3), "b": (3,), "gamma": (5,)}


def _params(seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {name: rng.standard_normal(shape) for name, shape in SHAPES.items()}


@pytest.mark.parametrize(
    ("ours", "theirs", "weight_decay"),
    [(Adam, "Adam", 0.0), (Adam, "Adam", 0.1), (AdamW, "AdamW", 0.1)],
)
def test_matches_torch_over_several_steps(torch, ours, theirs, weight_decay):
    theirs = getattr(torch.optim, theirs)
    params = _params(0)
    tensors = {name: torch.tensor(p.copy(), requires_grad=True) for name, p in params.items()}
    opt = ours(params, lr=0.01, betas=(0.8, 0.95), eps=1e-6, weight_decay=weight_decay)
    ref = theirs(list(tensors.values()), lr=0.01, betas=(0.8, 0.95), eps=1e-6,
                 weight_decay=weight_decay)  # fmt: skip
    rng = np.random.default_rng(1)
    lrs = [0.01, 0.02, 0.005, 0.01, 0.03, 0.001]  # a schedule changes lr between steps
    for lr in lrs:
        grads = {name: rng.standard_normal(shape) for name, shape in SHAPES.items()}
        opt.step(grads, lr=lr)
        for group in ref.param_groups:
            group["lr"] = lr
        for name, t in tensors.items():
            t.grad = torch.tensor(grads[name])
        ref.step()
    assert opt.t == len(lrs)
    for name, t in tensors.items():
        np.testing.assert_allclose(params[name], t.detach().numpy(), rtol=0, atol=1e-12)
        np.testing.assert_allclose(opt.v[name], ref.state[t]["exp_avg_sq"].numpy(), atol=1e-12)


def test_updates_in_place_and_first_step_is_lr_sized():
    params = _params(0)
    before = {name: p.copy() for name, p in params.items()}
    same_objects = dict(params)
    Adam(params, lr=0.1).step({name: np.full(shape, 3.0) for name, shape in SHAPES.items()})
    for name in SHAPES:
        assert params[name] is same_objects[name]
        # first step: m_hat = g, v_hat = g^2, so every entry moves by lr * g / |g| = lr
        np.testing.assert_allclose(before[name] - params[name], 0.1, rtol=1e-6)


def test_adamw_shrinks_with_zero_gradient():
    params = {"W": np.ones(3)}
    AdamW(params, lr=0.5, weight_decay=0.1).step({"W": np.zeros(3)})
    np.testing.assert_allclose(params["W"], 1 - 0.5 * 0.1)


def test_optimiser_bad_input():
    params = _params(0)
    with pytest.raises(ValueError, match="lr must be a positive number, got 0.0"):
        Adam(params, lr=0.0)
    with pytest.raises(ValueError, match=r"betas\[1\] must be a number in \[0, 1\), got 1.0"):
        Adam(params, betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="betas must be two numbers"):
        Adam(params, betas=(0.9,))
    opt = Adam(params)
    with pytest.raises(ValueError, match=r"no gradient for parameter\(s\) \['gamma'\]"):
        opt.step({"W": np.zeros((4, 3)), "b": np.zeros(3)})
    with pytest.raises(ValueError, match=r"gradient of 'b' has shape \(4,\), expected \(3,\)"):
        opt.step({"W": np.zeros((4, 3)), "b": np.zeros(4), "gamma": np.zeros(5)})


@pytest.mark.parametrize("max_norm", [0.5, 100.0])
def test_clip_grad_norm_matches_torch(torch, max_norm):
    grads = _params(2)
    tensors = [
        torch.zeros(shape, dtype=torch.float64, requires_grad=True) for shape in SHAPES.values()
    ]
    for t, g in zip(tensors, grads.values(), strict=True):
        t.grad = torch.tensor(g.copy())
    ref_norm = torch.nn.utils.clip_grad_norm_(tensors, max_norm)
    clipped, norm = clip_grad_norm(grads, max_norm)
    assert norm == pytest.approx(ref_norm.item(), rel=1e-12)  # summed in another order
    for t, g in zip(tensors, clipped.values(), strict=True):
        np.testing.assert_allclose(g, t.grad.numpy(), rtol=0, atol=1e-12)
    assert global_norm(clipped) == pytest.approx(min(norm, max_norm), rel=1e-5)
    assert clip_grad_norm(grads, max_norm)[0]["W"] is not grads["W"]  # input unchanged


def test_warmup_cosine_shape():
    total, warmup, peak, low = 100, 10, 1e-2, 1e-4
    lrs = [warmup_cosine_lr(s, total, peak, warmup, low) for s in range(total)]
    np.testing.assert_allclose(lrs[:warmup], peak * np.arange(1, warmup + 1) / warmup)
    assert lrs[warmup - 1] == pytest.approx(peak) and lrs[warmup] == pytest.approx(peak)
    assert lrs[-1] == pytest.approx(low)
    assert all(a >= b for a, b in zip(lrs[warmup:-1], lrs[warmup + 1 :], strict=True))
    middle = warmup + (total - warmup - 1) / 2
    assert warmup_cosine_lr(int(middle), total, peak, warmup, low) == pytest.approx(
        low + (peak - low) * 0.5 * (1 + math.cos(math.pi * (int(middle) - warmup) / 89))
    )
    assert warmup_cosine_lr(0, 1, peak) == peak  # a single step is the peak
    with pytest.raises(ValueError, match=r"step must be an int in \[0, 99\], got 100"):
        warmup_cosine_lr(100, total, peak, warmup)
    with pytest.raises(ValueError, match=r"warmup_steps must be an int in \[0, 100\], got 101"):
        warmup_cosine_lr(0, total, peak, 101)
