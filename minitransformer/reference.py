"""A deliberately slow, loop-based textbook encoder: the same model, one number at a time.

Nothing here is vectorised: attention loops over batch, heads, queries and keys; every dot
product, softmax, mean and variance is a plain Python loop over floats, and GELU uses
``math.erf``. It shares no math with :mod:`minitransformer.encoder` (only the parameter
names), which makes it an independent oracle for the tests — and a page to read when the
vectorised code feels like magic.

It is slow (pure Python); use it on tiny models only.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from minitransformer.config import EncoderConfig
from minitransformer.inputs import as_mask, as_token_ids, as_token_type_ids

Vector = list[float]
Matrix = list[Vector]  # rows


def _linear(x: Vector, W: np.ndarray, b: np.ndarray) -> Vector:
    """y_j = b_j + sum_i x_i W[i, j]."""
    d_in, d_out = W.shape
    return [float(b[j]) + sum(x[i] * float(W[i, j]) for i in range(d_in)) for j in range(d_out)]


def _layer_norm(x: Vector, gamma: np.ndarray, beta: np.ndarray, eps: float) -> Vector:
    n = len(x)
    mean = sum(x) / n
    var = sum((xi - mean) ** 2 for xi in x) / n
    std = math.sqrt(var + eps)
    return [float(gamma[i]) * (x[i] - mean) / std + float(beta[i]) for i in range(n)]


def _activation(name: str, x: float) -> float:
    if name == "relu":
        return max(0.0, x)
    if name == "gelu":
        return 0.5 * x * (1.0 + math.erf(x / math.sqrt(2.0)))
    if name == "gelu_tanh":
        return 0.5 * x * (1.0 + math.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))
    raise ValueError(f"unknown activation {name!r}")


def _sinusoid(pos: int, i: int, d_model: int) -> float:
    """PE[pos, i]: sin for even i, cos for odd i, frequency 1 / 10000^(2*(i//2) / d_model)."""
    angle = pos / 10000.0 ** (2 * (i // 2) / d_model)
    return math.sin(angle) if i % 2 == 0 else math.cos(angle)


def attention_one_head(
    q: Matrix, k: Matrix, v: Matrix, allowed: list[list[bool]], scale: bool = True
) -> tuple[Matrix, Matrix]:
    """Attention for one head, one query and one key at a time.

    Parameters
    ----------
    q, k, v : lists of S vectors of length Dh
    allowed : S x S booleans, ``allowed[i][j]`` True where query i may attend to key j
    scale : divide each dot product by sqrt(Dh) (False: raw dot products)

    Returns
    -------
    z : S vectors of length Dh, and weights : S x S
    """
    S, d_head = len(q), len(q[0])
    divisor = math.sqrt(d_head) if scale else 1.0
    z: Matrix = []
    weights: Matrix = []
    for i in range(S):
        scores = [sum(q[i][d] * k[j][d] for d in range(d_head)) / divisor for j in range(S)]
        visible = [scores[j] for j in range(S) if allowed[i][j]]
        row = [0.0] * S
        if visible:  # a query with no visible key reads nothing
            top = max(visible)
            total = sum(math.exp(s - top) for s in visible)
            for j in range(S):
                if allowed[i][j]:
                    row[j] = math.exp(scores[j] - top) / total
        weights.append(row)
        z.append([sum(row[j] * v[j][d] for j in range(S)) for d in range(d_head)])
    return z, weights


def reference_forward(
    config: EncoderConfig,
    params: dict[str, np.ndarray],
    token_ids: Any,
    mask: Any = None,
    token_type_ids: Any = None,
) -> tuple[np.ndarray, dict[int, np.ndarray]]:
    """The encoder's forward pass, written with loops.

    Parameters
    ----------
    config : EncoderConfig
    params : dict of name -> ndarray (the :class:`~minitransformer.encoder.Encoder` names)
    token_ids : int array of shape (B, S)
    mask : 0/1 array of shape (B, S), optional (1 = real token)
    token_type_ids : int array of shape (B, S), optional

    Returns
    -------
    hidden : float64 ndarray of shape (B, S, D)
    weights : dict mapping block index -> float64 ndarray of shape (B, H, S, S)
    """
    # checked as the encoder checks them: a negative id would silently wrap around in W_E[id]
    ids = as_token_ids(token_ids, config)
    B, S = ids.shape
    D, H = config.d_model, config.n_heads
    Dh = D // H
    pad = np.ones((B, S), dtype=bool) if mask is None else as_mask(mask, (B, S))
    types = as_token_type_ids(token_type_ids, (B, S), config)
    eps = config.layer_norm_eps
    p = params
    hidden = np.zeros((B, S, D))
    all_weights = {l: np.zeros((B, H, S, S)) for l in range(config.n_layers)}

    for b in range(B):
        allowed = [
            [bool(pad[b, j]) and (not config.causal or j <= i) for j in range(S)] for i in range(S)
        ]
        # embeddings
        x: Matrix = []
        for s in range(S):
            row = [float(p["embed.W_E"][ids[b, s], d]) for d in range(D)]
            for d in range(D):
                if config.positional == "sinusoidal":
                    row[d] += _sinusoid(s, d, D)
                elif config.positional == "learned":
                    row[d] += float(p["embed.W_pos"][s, d])
                if config.type_vocab_size > 0:
                    row[d] += float(p["embed.W_type"][types[b, s], d])
            if config.embed_layer_norm:
                row = _layer_norm(row, p["embed.ln.gamma"], p["embed.ln.beta"], eps)
            x.append(row)

        for l in range(config.n_layers):
            pre = f"blocks.{l}."

            def ln(name: str, rows: Matrix, pre: str = pre) -> Matrix:
                return [
                    _layer_norm(r, p[pre + name + ".gamma"], p[pre + name + ".beta"], eps)
                    for r in rows
                ]

            attn_in = ln("ln1", x) if config.norm == "pre" else x
            q = [_linear(t, p[pre + "attn.W_Q"], p[pre + "attn.b_Q"]) for t in attn_in]
            k = [_linear(t, p[pre + "attn.W_K"], p[pre + "attn.b_K"]) for t in attn_in]
            v = [_linear(t, p[pre + "attn.W_V"], p[pre + "attn.b_V"]) for t in attn_in]
            concat: Matrix = [[] for _ in range(S)]
            for h in range(H):
                cols = slice(h * Dh, (h + 1) * Dh)
                q_h, k_h, v_h = [t[cols] for t in q], [t[cols] for t in k], [t[cols] for t in v]
                z, weights = attention_one_head(q_h, k_h, v_h, allowed, config.scale_scores)
                all_weights[l][b, h] = weights
                for s in range(S):
                    concat[s].extend(z[s])
            attn_out = [_linear(t, p[pre + "attn.W_O"], p[pre + "attn.b_O"]) for t in concat]
            resid_mid = [[x[s][d] + attn_out[s][d] for d in range(D)] for s in range(S)]

            h_in = ln("ln1", resid_mid) if config.norm == "post" else ln("ln2", resid_mid)
            ffn_out = []
            for t in h_in:
                act = [
                    _activation(config.activation, u)
                    for u in _linear(t, p[pre + "ffn.W_1"], p[pre + "ffn.b_1"])
                ]
                ffn_out.append(_linear(act, p[pre + "ffn.W_2"], p[pre + "ffn.b_2"]))
            if config.norm == "post":
                x = ln("ln2", [[h_in[s][d] + ffn_out[s][d] for d in range(D)] for s in range(S)])
            else:
                x = [[resid_mid[s][d] + ffn_out[s][d] for d in range(D)] for s in range(S)]

        if config.norm == "pre":
            x = [_layer_norm(r, p["final_ln.gamma"], p["final_ln.beta"], eps) for r in x]
        hidden[b] = x
    return hidden, all_weights
