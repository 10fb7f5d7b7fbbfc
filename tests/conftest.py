"""Shared helpers of the test suite.

* :func:`random_params` — parameters with *every* tensor random (non-zero biases, LayerNorm
  gains away from 1, shifts away from 0), so a test cannot pass by accident because a bias
  or a shift is 0, as it is in :func:`minitransformer.params.init_params`.
* :func:`make_encoder` — an :class:`Encoder` holding such parameters.
* ``torch_*`` helpers — the same weights copied into PyTorch modules, with the transposes
  spelled out. They import torch inside the function, so the NumPy-only tier of the suite
  (every test that does not take the ``torch`` fixture) runs where torch is absent.

Weight layouts: ours are (d_in, d_out) and applied as ``x @ W + b``; ``torch.nn.Linear``
stores (d_out, d_in) and computes ``x @ weight.T + bias``, so every weight is copied with
``.T``. ``nn.MultiheadAttention.in_proj_weight`` stacks ``[W_Q.T; W_K.T; W_V.T]``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

from minitransformer import Encoder, EncoderConfig
from minitransformer.params import param_shapes

if TYPE_CHECKING:
    import torch


@pytest.fixture(name="torch")
def torch_module() -> Any:
    """The ``torch`` module, or a skip naming it: only the tests that compare with PyTorch
    take this fixture, so the NumPy-only tests beside them run where torch is absent."""
    return pytest.importorskip("torch", reason="PyTorch comparisons need the 'test' extra")


def random_params(config: EncoderConfig, seed: int = 0) -> dict[str, np.ndarray]:
    """Every parameter random, in ``config.dtype``.

    Embeddings ~ N(0, 1); projection weights ~ N(0, 1/d_in); biases and LayerNorm shifts
    ~ N(0, 0.1^2); LayerNorm gains ~ 1 + N(0, 0.1^2).
    """
    rng = np.random.default_rng(seed)
    params = {}
    for name, shape in param_shapes(config).items():
        leaf = name.rsplit(".", 1)[-1]
        if leaf == "gamma":
            value = 1.0 + 0.1 * rng.standard_normal(shape)
        elif leaf == "beta" or leaf.startswith("b_"):
            value = 0.1 * rng.standard_normal(shape)
        elif name.startswith("embed."):
            value = rng.standard_normal(shape)
        else:
            value = rng.standard_normal(shape) / np.sqrt(shape[0])
        params[name] = value.astype(config.dtype)
    return params


def make_encoder(config: EncoderConfig, seed: int = 0) -> Encoder:
    """An encoder with :func:`random_params`."""
    return Encoder(config, params=random_params(config, seed))


def random_padding_mask(rng: np.random.Generator, batch: int, seq: int) -> np.ndarray:
    """A (B, S) bool padding mask, right-padded, each row with 1..S real tokens."""
    lengths = rng.integers(1, seq + 1, size=batch)
    return np.arange(seq)[None, :] < lengths[:, None]


# ---------------------------------------------------------------------------- torch


def to_torch(array: np.ndarray) -> torch.Tensor:
    """A torch tensor with the same values and dtype (a copy, contiguous)."""
    import torch

    return torch.from_numpy(np.array(array, copy=True, order="C"))


def torch_dtype(config: EncoderConfig) -> Any:
    import torch

    return {"float32": torch.float32, "float64": torch.float64}[config.dtype]


def copy_attention_into(mha: Any, params: dict[str, np.ndarray], block: str) -> None:
    """Copy ``{block}.attn.*`` into a ``torch.nn.MultiheadAttention`` (in place)."""
    import torch

    with torch.no_grad():
        mha.in_proj_weight.copy_(
            torch.cat([to_torch(params[f"{block}.attn.W_{n}"]).T for n in "QKV"], dim=0)
        )
        mha.in_proj_bias.copy_(torch.cat([to_torch(params[f"{block}.attn.b_{n}"]) for n in "QKV"]))
        mha.out_proj.weight.copy_(to_torch(params[f"{block}.attn.W_O"]).T)
        mha.out_proj.bias.copy_(to_torch(params[f"{block}.attn.b_O"]))


def torch_mha(model: Encoder, layer: int = 0) -> Any:
    """Block ``layer``'s attention as a ``torch.nn.MultiheadAttention(batch_first=True)``."""
    import torch

    cfg = model.config
    mha = torch.nn.MultiheadAttention(
        cfg.d_model, cfg.n_heads, dropout=0.0, batch_first=True, dtype=torch_dtype(cfg)
    )
    copy_attention_into(mha, model.params, f"blocks.{layer}")
    return mha.eval()


def copy_block_into(torch_layer: Any, params: dict[str, np.ndarray], layer: int) -> None:
    """Copy block ``layer`` into a ``torch.nn.TransformerEncoderLayer`` (in place).

    Our ln1 / ln2 are torch's norm1 / norm2 in both post-norm and pre-norm.
    """
    import torch

    b = f"blocks.{layer}"
    copy_attention_into(torch_layer.self_attn, params, b)
    with torch.no_grad():
        torch_layer.linear1.weight.copy_(to_torch(params[f"{b}.ffn.W_1"]).T)
        torch_layer.linear1.bias.copy_(to_torch(params[f"{b}.ffn.b_1"]))
        torch_layer.linear2.weight.copy_(to_torch(params[f"{b}.ffn.W_2"]).T)
        torch_layer.linear2.bias.copy_(to_torch(params[f"{b}.ffn.b_2"]))
        torch_layer.norm1.weight.copy_(to_torch(params[f"{b}.ln1.gamma"]))
        torch_layer.norm1.bias.copy_(to_torch(params[f"{b}.ln1.beta"]))
        torch_layer.norm2.weight.copy_(to_torch(params[f"{b}.ln2.gamma"]))
        torch_layer.norm2.bias.copy_(to_torch(params[f"{b}.ln2.beta"]))


def torch_encoder_layer(model: Encoder, layer: int = 0) -> Any:
    """Block ``layer`` as a ``torch.nn.TransformerEncoderLayer`` in ``.eval()``, dropout 0."""
    import torch

    cfg = model.config
    torch_layer = torch.nn.TransformerEncoderLayer(
        cfg.d_model,
        cfg.n_heads,
        cfg.d_ff,
        dropout=0.0,
        activation=cfg.activation,  # "relu" or "gelu" (exact, erf) in both libraries
        layer_norm_eps=cfg.layer_norm_eps,
        batch_first=True,
        norm_first=cfg.norm == "pre",
        dtype=torch_dtype(cfg),
    )
    copy_block_into(torch_layer, model.params, layer)
    return torch_layer.eval()
