"""How much of each input token reaches each output: attention rollout and attention flow.

Abnar & Zuidema (2020), "Quantifying Attention Flow in Transformers" (reference code
``samiraabnar/attention_flow``). Raw attention of layer l says which *layer l-1 states* a token
reads, not which *input tokens*; after a few layers every state mixes many inputs. Both methods
follow the mixing down to the inputs.

The residual connection ``x + MHA(x)`` passes half of each state on unchanged, so each layer's
head-averaged attention ``W_l = mean_h A[l, h]`` is first mixed with the identity and
renormalised::

    A_hat_l = 0.5 W_l + 0.5 I,   rows divided by their sum

**Rollout** multiplies these matrices (Eq. 1 of the paper): ``R_1 = A_hat_1``,
``R_l = A_hat_l R_(l-1)``. ``R_l[i, j]`` is how much input token j contributes to token i's
state after layer l, if contributions mix linearly. Every row sums to 1.

**Flow** treats the same matrices as a network: node ``(l, i)`` is token i after layer l
(layer 0 = the inputs), and an edge from ``(l, i)`` down to ``(l-1, j)`` has capacity
``A_hat_l[i, j]``. The flow of input j into ``(l, i)`` is the maximum flow from ``(l, i)`` to
``(0, j)``; a path carries at most its *smallest* edge, where rollout would multiply them. As in
the reference code, each output's flows are divided by their sum. After one layer, flow equals
rollout. Flow needs one max-flow per (output, input) pair, so it is limited to short inputs.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np

from minitransformer.interpret.checks import check_rows, check_weights

#: Attention flow refuses longer inputs (S^2 max-flows per layer, each on (L+1) S nodes).
MAX_FLOW_TOKENS = 16
_EPS = 1e-12  # residual capacities below this count as 0


def residual_attention(weights: Any, residual: float = 0.5) -> np.ndarray:
    """``A_hat = (1 - residual) * mean_h A + residual * I``, rows renormalised to sum 1.

    Parameters
    ----------
    weights : ndarray of shape (L, B, H, S, S) or (B, H, S, S)
    residual : float in [0, 1]
        Weight of the identity (0.5 in the paper).

    Returns
    -------
    ndarray of shape (L, B, S, S)
        Padding query rows (all-zero attention) become rows of the identity.
    """
    if not 0.0 <= residual <= 1.0:
        raise ValueError(f"residual must be in [0, 1], got {residual}")
    A = check_weights(weights)
    S = A.shape[-1]
    mixed = (1.0 - residual) * A.mean(axis=2) + residual * np.eye(S)  # (L, B, S, S)
    sums = mixed.sum(axis=-1, keepdims=True)
    if residual == 0.0:  # padding rows are all zero: keep them as the identity
        mixed = np.where(sums > 0, mixed, np.eye(S))
        sums = mixed.sum(axis=-1, keepdims=True)
    return mixed / sums


def attention_rollout(weights: Any, residual: float = 0.5) -> np.ndarray:
    """Attention rollout after every layer: ``R_l = A_hat_l @ R_(l-1)``, ``R_1 = A_hat_1``.

    Parameters
    ----------
    weights : ndarray of shape (L, B, H, S, S) or (B, H, S, S)
    residual : float
        See :func:`residual_attention`.

    Returns
    -------
    ndarray of shape (L, B, S, S)
        ``[l, b, i, j]``: share of input token j in token i's state after layer l + 1 (index 0
        is after the first layer). Every row sums to 1.
    """
    A_hat = residual_attention(weights, residual)
    rollout = np.empty_like(A_hat)
    rollout[0] = A_hat[0]
    for l in range(1, len(A_hat)):
        rollout[l] = A_hat[l] @ rollout[l - 1]  # (B, S, S) @ (B, S, S)
    return rollout


def max_flow(capacity: np.ndarray, source: int, sink: int) -> float:
    """The value of a maximum flow from ``source`` to ``sink`` (Edmonds-Karp, 1972).

    Repeat: find the *shortest* path from source to sink along edges with spare (residual)
    capacity, by breadth-first search; push as much flow along it as its tightest edge
    allows; record the push as spare capacity on the reverse edges (so later paths may undo
    it). Stop when no path is left; by the max-flow min-cut theorem the flow is then maximal.

    Parameters
    ----------
    capacity : ndarray of shape (n, n)
        ``capacity[u, v] >= 0`` of the edge u -> v (0: no edge).
    source, sink : int

    Returns
    -------
    float
    """
    residual = np.array(capacity, dtype=np.float64)
    total = 0.0
    while True:
        parent = np.full(len(residual), -1)  # breadth-first search for a shortest path
        parent[source] = source
        queue = deque([source])
        while queue and parent[sink] < 0:
            u = queue.popleft()
            for w in np.flatnonzero((residual[u] > _EPS) & (parent < 0)):
                parent[w] = u
                queue.append(int(w))
        if parent[sink] < 0:
            return total
        path: list[tuple[int, int]] = []  # walk back from the sink: the edges of the path
        node = sink
        while node != source:
            path.append((int(parent[node]), node))
            node = int(parent[node])
        push = min(residual[u, v] for u, v in path)
        for u, v in path:
            residual[u, v] -= push
            residual[v, u] += push
        total += push


def attention_flow(
    weights: Any, mask: Any = None, residual: float = 0.5, max_tokens: int = MAX_FLOW_TOKENS
) -> np.ndarray:
    """Attention flow after every layer (max-flow on the layer graph; see the module docstring).

    Parameters
    ----------
    weights : ndarray of shape (L, B, H, S, S) or (B, H, S, S)
    mask : bool or 0/1 array of shape (B, S), optional
        Real tokens; padding rows and columns of the result are 0.
    residual : float
        See :func:`residual_attention`.
    max_tokens : int
        Refuse inputs longer than this. The cost grows as S^4 and with depth: about 0.1 s
        for 8 tokens and 3 layers, 10-25 s for 16 tokens and 6 layers (pure Python search).

    Returns
    -------
    ndarray of shape (L, B, S, S)
        ``[l, b, i, j]``: flow from input j into token i after layer l + 1, each real row
        divided by its sum.
    """
    A_hat = residual_attention(weights, residual)
    L, B, S, _ = A_hat.shape
    if S > max_tokens:
        raise ValueError(
            f"attention_flow needs S^2 max-flows per layer; inputs are limited to max_tokens="
            f"{max_tokens} tokens, got {S} (use attention_rollout for long inputs)"
        )
    rows = np.ones((B, S)) if mask is None else check_rows("mask", mask, (B, S)).astype(float)
    flow = np.zeros((L, B, S, S))
    for b in range(B):
        real = [int(i) for i in np.flatnonzero(rows[b])]
        n = (L + 1) * S  # node (layer, token) has index layer * S + token
        capacity = np.zeros((n, n))
        for l in range(1, L + 1):  # edges from layer l down to layer l-1
            capacity[l * S : (l + 1) * S, (l - 1) * S : l * S] = A_hat[l - 1, b]
        for l in range(1, L + 1):
            for i in real:
                for j in real:
                    flow[l - 1, b, i, j] = max_flow(capacity, l * S + i, j)
                total = flow[l - 1, b, i].sum()
                if total > 0:
                    flow[l - 1, b, i] /= total
    return flow
