"""Which heads attend alike: Jensen-Shannon distances between heads, a 2-D map and clusters.

Clark et al. (2019), "What Does BERT Look At?", compare two heads by the Jensen-Shannon
divergence between their attention distributions for the same query, averaged over queries
and inputs, then place the heads on a plane with multidimensional scaling (MDS). For two
distributions P and Q over the keys of one query row::

    M = (P + Q) / 2
    JS(P, Q) = 1/2 KL(P || M) + 1/2 KL(Q || M),   KL(P || M) = sum_j P_j log(P_j / M_j)

JS is symmetric, 0 exactly when P = Q and at most ``log 2`` (disjoint supports). Its square
root is a metric (Endres & Schindelin 2003), the *Jensen-Shannon distance*; we average the
distance over rows, which keeps the triangle inequality (Clark et al. sum the divergence over
rows, which only rescales it for inputs of one length).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from minitransformer.interpret.checks import check_rows, check_weights

LOG2 = float(np.log(2.0))


def js_divergence(P: np.ndarray, Q: np.ndarray) -> np.ndarray:
    """Jensen-Shannon divergence (nats) between distributions over the last axis.

    Parameters
    ----------
    P, Q : ndarray of shape (..., n), broadcastable; each row sums to 1

    Returns
    -------
    ndarray of shape (...): in ``[0, log 2]``; 0 for rows that are all zero in both.
    """
    M = (P + Q) / 2

    def kl_to_m(X: np.ndarray) -> np.ndarray:  # sum over X > 0 (then M > 0): 0 log 0 = 0
        ratio = np.where(X > 0, X, 1.0) / np.where(M > 0, M, 1.0)
        return (X * np.log(ratio)).sum(-1)

    js = 0.5 * kl_to_m(P) + 0.5 * kl_to_m(Q)
    return np.clip(js, 0.0, LOG2)  # rounding can step outside by ~1e-16


def head_distances(weights: Any, mask: Any = None) -> np.ndarray:
    """Mean Jensen-Shannon distance between every pair of heads, over real query rows.

    ``d(h1, h2) = mean over sequences b and real queries i of sqrt(JS(A_h1[b, i], A_h2[b, i]))``

    Parameters
    ----------
    weights : ndarray of shape (L, B, H, S, S) or (B, H, S, S)
    mask : bool or 0/1 array of shape (B, S), optional
        Real tokens; padding query rows are skipped.

    Returns
    -------
    ndarray of shape (L*H, L*H)
        Head ``(l, h)`` is row ``l * H + h``. Symmetric, zero diagonal, in ``[0, sqrt(log 2)]``.
    """
    A = check_weights(weights)
    L, B, H, S, _ = A.shape
    rows = np.ones((B, S)) if mask is None else check_rows("mask", mask, (B, S)).astype(float)
    if rows.sum() == 0:
        raise ValueError("mask has no real token: there is no query row to compare heads on")
    heads = A.transpose(0, 2, 1, 3, 4).reshape(L * H, B, S, S)  # head (l, h) -> index l*H + h
    N = L * H
    D = np.zeros((N, N))
    for a in range(N):
        js = js_divergence(heads[a][None], heads[a + 1 :])  # (N - a - 1, B, S)
        d = (np.sqrt(js) * rows).sum(axis=(1, 2)) / rows.sum()
        D[a, a + 1 :] = D[a + 1 :, a] = d
    return D


def head_names(n_layers: int, n_heads: int) -> list[str]:
    """``["L0H0", "L0H1", ...]``: the names of the rows of :func:`head_distances`."""
    return [f"L{l}H{h}" for l in range(n_layers) for h in range(n_heads)]


def _check_distances(distances: Any) -> np.ndarray:
    """A finite, symmetric (n, n) float64 matrix, or a clear error."""
    D = np.asarray(distances, dtype=np.float64)
    if D.ndim != 2 or D.shape[0] != D.shape[1]:
        raise ValueError(f"distances must be a symmetric (n, n) matrix, got shape {D.shape}")
    if not np.isfinite(D).all():
        raise ValueError("distances must be finite, got nan or inf")
    if not np.allclose(D, D.T):
        raise ValueError("distances must be a symmetric (n, n) matrix: D != D.T")
    return D


def classical_mds(distances: Any, dims: int = 2) -> np.ndarray:
    """Classical (Torgerson) multidimensional scaling: points whose distances match.

    With ``D2`` the squared distances and ``J = I - 1/n`` the centring matrix, the Gram matrix
    of the centred points is ``G = -1/2 J D2 J``. Its eigen-decomposition ``G = V diag(lam) V^T``
    gives the coordinates ``X = V[:, top dims] sqrt(lam[top dims])`` (negative eigenvalues, from
    distances no Euclidean set of points has, are clipped to 0). Exact when the distances are
    Euclidean in ``dims`` dimensions (up to rotation and reflection).

    Parameters
    ----------
    distances : ndarray of shape (n, n), symmetric
    dims : int

    Returns
    -------
    ndarray of shape (n, dims)
    """
    D = _check_distances(distances)
    n = D.shape[0]
    J = np.eye(n) - 1.0 / n
    G = -0.5 * J @ (D**2) @ J
    lam, V = np.linalg.eigh(G)  # ascending
    top = np.argsort(lam)[::-1][:dims]
    X = V[:, top] * np.sqrt(np.clip(lam[top], 0.0, None))
    if X.shape[1] < dims:  # fewer points than dimensions
        X = np.pad(X, ((0, 0), (0, dims - X.shape[1])))
    return X


def cluster_heads(distances: Any, threshold: float) -> list[list[int]]:
    """Group heads by average-linkage agglomerative clustering.

    Start with every head alone; repeatedly merge the two clusters with the smallest mean
    pairwise distance, while it is below ``threshold``. Heads in one cluster attend alike
    (near-duplicates when the threshold is small).

    Returns
    -------
    list of clusters, each a sorted list of head indices (``l * H + h``), largest first.
    """
    D = _check_distances(distances)
    clusters = [[i] for i in range(D.shape[0])]
    while len(clusters) > 1:
        best, pair = np.inf, (0, 0)
        for a in range(len(clusters)):
            for b in range(a + 1, len(clusters)):
                d = D[np.ix_(clusters[a], clusters[b])].mean()
                if d < best:
                    best, pair = d, (a, b)
        if best >= threshold:
            break
        a, b = pair
        clusters[a] = sorted(clusters[a] + clusters[b])
        del clusters[b]
    return sorted(clusters, key=lambda c: (-len(c), c[0]))
