"""AttentionViz's query-key space as numbers: normalise one head's queries and keys, project them.

Following Yeh et al. (2023, AttentionViz, arXiv 2305.03210):

1. **Translate** the keys to the queries' centroid: ``k <- k - mean(k) + mean(q)``. For one
   query, ``q . (k_j + c)`` adds the same ``q . c`` to every score, so its softmax -- its
   attention -- is unchanged.
2. **Scale**: ``c = sqrt(mean ||q|| / mean ||k||)``, keys ``* c`` and queries ``/ c``. Every dot
   product is unchanged, and queries and keys get the same mean norm.
3. **Project** queries and keys *jointly* onto their top two principal components (PCA with
   NumPy's SVD), so distances in the plane are comparable between the two kinds of point.

``viz.qk_space`` draws the plane; ``minitransformer.tensorboard`` writes the normalised points
to TensorBoard's projector. Both take the numbers from here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def normalize_qk(
    q: np.ndarray, k: np.ndarray, *, translate: bool = True, scale: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """AttentionViz's normalisation: comparable queries and keys, same attention.

    Parameters
    ----------
    q : ndarray of shape (n_queries, d_head)
    k : ndarray of shape (n_keys, d_head)
    translate : bool
        Move the keys' centroid onto the queries': ``k ← k − mean(k) + mean(q)``. Adds a
        per-query constant to that query's scores, so its softmax is unchanged.
    scale : bool
        ``c = sqrt(mean‖q‖ / mean‖k‖)`` (after translating), then ``q / c`` and ``k · c``:
        every dot product is unchanged and both get the same mean norm.

    Returns
    -------
    (q, k) normalised, same shapes.
    """
    q, k = _check_qk(q, k)
    if translate:
        k = k - k.mean(axis=0) + q.mean(axis=0)
    if scale:
        c = np.sqrt(np.linalg.norm(q, axis=1).mean() / max(np.linalg.norm(k, axis=1).mean(), 1e-30))
        q, k = q / c, k * c
    return q, k


@dataclass(frozen=True)
class QKProjection:
    """Queries and keys of one head projected jointly onto two principal axes.

    Attributes
    ----------
    queries : ndarray of shape (n_queries, 2)
    keys : ndarray of shape (n_keys, 2)
    axes : ndarray of shape (2, d_head)
        The two principal directions (orthonormal rows).
    explained : ndarray of shape (2,)
        Fraction of the joint variance along each axis.
    """

    queries: np.ndarray
    keys: np.ndarray
    axes: np.ndarray
    explained: np.ndarray


def qk_projection(
    q: np.ndarray, k: np.ndarray, *, translate: bool = True, scale: bool = True
) -> QKProjection:
    """Normalise (see :func:`normalize_qk`), then project queries and keys jointly with PCA.

    The points ``[q; k]`` are centred on their joint mean, and ``U S Vᵀ`` is their SVD; the
    first two rows of ``Vᵀ`` are the axes (each flipped so its largest entry is positive, to
    make the picture deterministic), and the coordinates are the centred points times them.

    Parameters
    ----------
    q : ndarray of shape (n_queries, d_head)
    k : ndarray of shape (n_keys, d_head)
    translate, scale : bool
        Passed to :func:`normalize_qk`.

    Returns
    -------
    QKProjection
    """
    q, k = _check_qk(q, k)
    if q.shape[1] < 2 or len(q) + len(k) < 3:
        raise ValueError(f"need d_head >= 2 and at least 3 points, got q {q.shape}, k {k.shape}")
    q, k = normalize_qk(q, k, translate=translate, scale=scale)
    points = np.vstack([q, k])  # (n_queries + n_keys, d_head)
    centred = points - points.mean(axis=0)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    axes = vt[:2]  # (2, d_head)
    signs = np.sign(axes[np.arange(2), np.abs(axes).argmax(axis=1)])
    axes = axes * signs[:, None]
    coords = centred @ axes.T  # (n, 2)
    variance = s**2
    explained = variance[:2] / max(variance.sum(), 1e-30)
    return QKProjection(coords[: len(q)], coords[len(q) :], axes, explained)


def _check_qk(q: np.ndarray, k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    q, k = np.asarray(q, dtype=float), np.asarray(k, dtype=float)
    if q.ndim != 2 or k.ndim != 2 or q.shape[1] != k.shape[1]:
        raise ValueError(
            f"q and k must be (n, d_head) arrays with the same d_head, got {q.shape} and {k.shape}"
        )
    return q, k
