"""Embedding geometry: principal components and cosine similarity.

PCA finds the directions along which a set of vectors varies most. Centre the vectors
(the rows of X) and write X = U S V^T: the principal directions are the columns of V,
each vector's coordinates are the rows of U S, and component k explains
s_k^2 / sum(s^2) of the variance. The explorer uses it to draw the prompt's token
embeddings and GPT-2's 1024 learned position embeddings in 2-D.

Cosine similarity cos(a, b) = a.b / (|a| |b|) compares directions, ignoring length.
"""

from __future__ import annotations

import numpy as np


def pca_2d(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates on the first two principal components [n, 2] and their share of the variance [2].

    Centre the vectors (the rows of X) and write X = U S V^T. The principal directions
    are the columns of V, the coordinates are U S, and component k explains
    s_k^2 / sum(s^2) of the variance. U and s^2 are the eigenvectors and eigenvalues of
    X X^T, V those of X^T X: whichever matrix is smaller is the cheaper to decompose.
    A token that occurs c times is one row weighted by sqrt(c): the same X^T X, and a
    much smaller X X^T for a long prompt that repeats its words.
    Missing components (fewer than 3 points) are 0.
    """
    x = np.asarray(vectors, dtype=np.float64)
    x = x - x.mean(axis=0)
    rows, inverse, counts = _distinct_rows(x)
    weighted = rows * np.sqrt(counts)[:, None]  # weighted^T weighted = x^T x
    small_gram = len(weighted) <= x.shape[1]
    eigenvalues, eigenvectors = np.linalg.eigh(weighted @ weighted.T if small_gram else weighted.T @ weighted)
    top = np.argsort(eigenvalues)[::-1][:2]  # eigh's order is ascending
    total = float((x ** 2).sum())  # = sum of all s_k^2
    s_squared = np.where(eigenvalues[top] > 1e-12 * total, eigenvalues[top], 0.0)  # rounding noise -> 0
    coords, variance = np.zeros((len(rows), 2)), np.zeros(2)
    if small_gram:  # weighted = U S V^T, so a distinct row's coordinates rows V are U S / sqrt(count)
        coords[:, :len(top)] = eigenvectors[:, top] * np.sqrt(s_squared) / np.sqrt(counts)[:, None]
    else:
        coords[:, :len(top)] = rows @ eigenvectors[:, top]
    if total > 0:
        variance[:len(top)] = s_squared / total
    return coords[inverse.reshape(-1)], variance


def _distinct_rows(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The distinct rows of x (in order of first appearance), each row's index among them, and their counts."""
    first_seen: dict[bytes, int] = {}
    inverse = np.array([first_seen.setdefault(row.tobytes(), len(first_seen)) for row in x], dtype=np.int64)
    first_row = np.empty(len(first_seen), dtype=np.int64)
    first_row[inverse[::-1]] = np.arange(len(x))[::-1]  # written last to first: the first occurrence stays
    return x[first_row], inverse, np.bincount(inverse, minlength=len(first_seen))


def cosine_similarity(vectors: np.ndarray) -> np.ndarray:
    """cos(v_i, v_j) for every pair of rows, [n, n]; a zero vector has similarity 0 to everything."""
    x = np.asarray(vectors, dtype=np.float64)
    unit = x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)
    return unit @ unit.T
