"""Answers for notebook 04: multi-head attention."""

from minitransformer import scaled_dot_product_attention  # exercise 3.1, from the library


def split_heads(x, n_heads):
    """(B, S, D) -> (B, H, S, d_head): head h gets columns h*d_head : (h+1)*d_head."""
    B, S, D = x.shape
    d_head = D // n_heads
    return x.reshape(B, S, n_heads, d_head).transpose(0, 2, 1, 3)


def merge_heads(z):
    """(B, H, S, d_head) -> (B, S, H * d_head): the heads side by side again."""
    B, H, S, d_head = z.shape
    return z.transpose(0, 2, 1, 3).reshape(B, S, H * d_head)


def multi_head_attention(x, W_Q, W_K, W_V, W_O, b_Q, b_K, b_V, b_O, n_heads, mask=None):
    """Exercise 4.1: project, split into heads, attend per head, merge, project out.

    x : (B, S, D); W_* : (D, D); b_* : (D,); mask broadcastable to (B, H, S, S).
    Returns out (B, S, D) and weights (B, H, S, S).
    """
    q = split_heads(x @ W_Q + b_Q, n_heads)  # (B, H, S, d_head)
    k = split_heads(x @ W_K + b_K, n_heads)
    v = split_heads(x @ W_V + b_V, n_heads)
    z, weights, _ = scaled_dot_product_attention(q, k, v, mask)  # every head attends on its own
    concat = merge_heads(z)  # (B, S, D)
    out = concat @ W_O + b_O  # mixes the heads' results
    return out, weights
