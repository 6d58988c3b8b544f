"""MinHash and LSH banding over character n-grams, vectorised with numpy.

Pure functions, no I/O: :mod:`lmforge.corpus.dedup` wraps them into a pipeline step.

Hashing, in three layers:

1. **Shingles.** A batch of texts is concatenated into one array of Unicode code
   points; every window of ``k`` characters gets a polynomial hash modulo 2⁶⁴
   (``k`` multiply-adds over shifted views of the array), finished with the
   splitmix64 mixer. Windows that cross a document boundary are dropped. A text
   shorter than ``k`` characters (including the empty text) is *one* shingle:
   the whole text. (datatrove never compares such documents; here two identical
   short texts always match.)
2. **Permutations.** ``h_i(x) = (a_i·x mod 2⁶⁴) >> 32`` with ``a_i`` a random
   odd 64-bit multiplier: Dietzfelbinger's multiply-shift, a universal family
   that keeps the high (good) bits of the product. The tempting
   ``(a·x + b) mod (2⁶¹ − 1)`` truncated to 32 bits is *not* uniform on 32 bits
   and biases the Jaccard estimate; tests check this estimator is unbiased on
   sets of known Jaccard. Because ``>> 32`` is monotone, the minimum is taken
   over the 64-bit products and shifted once per document.
3. **Signatures.** Shingle hashes are processed in blocks of 8k: a
   ``num_perm × block`` matrix of products (one multiply pass), reduced to the
   minimum per document with ``np.minimum.reduceat``. Texts are hashed in
   chunks of ~64k characters so that the arrays stay in cache and memory stays
   bounded whatever the document lengths.

LSH: the signature is cut into ``bands`` bands of ``rows`` values; each band is
hashed to 64 bits. Two documents are candidates when any band hash is equal.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from functools import cache

import numpy as np

_MASK64 = (1 << 64) - 1
_POLY_BASE = np.uint64(0x100000001B3)  # FNV-1a 64-bit prime: odd, so invertible mod 2**64
_SHORT_SALT = np.uint64(0x9E3779B97F4A7C15)
BLOCK = 8_192
"""Shingles per block in the permutation × shingle product (128 × 8k × 8 bytes = 8 MiB)."""
CHARS_PER_CHUNK = 65_536
"""Characters hashed at once: small arrays stay in cache and bound memory for long documents."""


def sorted_unique(values: np.ndarray) -> np.ndarray:
    """Sorted distinct values (a plain sort: faster than ``np.unique`` on large integer arrays)."""
    out = np.sort(values)
    if len(out) < 2:
        return out
    return out[np.r_[True, out[1:] != out[:-1]]]


def splitmix64(x: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser (a bijection on uint64 with full avalanche), vectorised."""
    z = x.astype(np.uint64, copy=True)
    z ^= z >> np.uint64(30)
    z *= np.uint64(0xBF58476D1CE4E5B9)
    z ^= z >> np.uint64(27)
    z *= np.uint64(0x94D049BB133111EB)
    z ^= z >> np.uint64(31)
    return z


def code_points(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """All texts' code points concatenated (uint32) and the offsets (len(texts)+1, int64)."""
    lengths = np.fromiter((len(t) for t in texts), dtype=np.int64, count=len(texts))
    offsets = np.zeros(len(texts) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    joined = "".join(texts).encode("utf-32-le", errors="surrogatepass")
    return np.frombuffer(joined, dtype=np.uint32), offsets


def window_hashes(codes: np.ndarray, k: int) -> np.ndarray:
    """Polynomial hash mod 2⁶⁴ of every window of ``k`` code points (len(codes)-k+1 values)."""
    n = len(codes) - k + 1
    if n <= 0:
        return np.zeros(0, dtype=np.uint64)
    c = codes.astype(np.uint64)
    h = c[0:n].copy()
    for j in range(1, k):
        h *= _POLY_BASE
        h += c[j : j + n]
    return h


def _short_text_hash(codes: np.ndarray) -> int:
    h = 0
    for c in codes.tolist():
        h = (h * 0x100000001B3 + c + 1) & _MASK64
    return (h ^ (len(codes) * 0x9E3779B97F4A7C15)) & _MASK64


def shingle_hashes(texts: Sequence[str], k: int) -> tuple[np.ndarray, np.ndarray]:
    """64-bit hashes of every character k-gram of every text, grouped by text.

    Returns ``(hashes, offsets)``: the shingles of text ``i`` are
    ``hashes[offsets[i]:offsets[i+1]]``; every text has at least one (a text
    shorter than ``k`` is a single shingle: itself). Repeated shingles are kept
    (the minimum does not care).
    """
    codes, char_off = code_points(texts)
    lengths = np.diff(char_off)
    long_doc = lengths >= k
    counts = np.where(long_doc, lengths - k + 1, 1)
    offsets = np.zeros(len(texts) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    out = np.empty(int(offsets[-1]), dtype=np.uint64)

    h = window_hashes(codes, k)
    if len(h):
        # A window starting at p is valid when it ends inside p's document.
        doc_of_pos = np.repeat(np.arange(len(texts)), lengths)[: len(h)]
        valid = np.arange(len(h)) + k <= char_off[1:][doc_of_pos]
        slot_is_long = np.repeat(long_doc, counts)
        out[slot_is_long] = h[valid]
    short = np.flatnonzero(~long_doc)
    if len(short):
        out[offsets[short]] = [
            _short_text_hash(codes[char_off[i] : char_off[i + 1]]) for i in short
        ]
    return splitmix64(out), offsets


@cache
def permutations(num_perm: int, seed: int) -> np.ndarray:
    """Odd uniform 64-bit multipliers, shape (num_perm, 1), drawn from ``seed``."""
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 2**64, size=num_perm, dtype=np.uint64, endpoint=False) | np.uint64(1)
    return a.reshape(-1, 1)


def signatures_from_hashes(
    hashes: np.ndarray, offsets: np.ndarray, num_perm: int = 128, seed: int = 1
) -> np.ndarray:
    """MinHash signatures (n_docs, num_perm) uint32 of grouped 64-bit element hashes.

    ``h_i(x) = (a_i·x mod 2⁶⁴) >> 32``; since the shift is monotone, the minimum
    is taken over the 64-bit products and shifted once per document.
    Every group must be non-empty (``np.diff(offsets) > 0``).
    """
    a = permutations(num_perm, seed)
    n_docs = len(offsets) - 1
    total = int(offsets[-1])
    if n_docs == 0:
        return np.zeros((0, num_perm), dtype=np.uint32)
    # Segments: document starts plus block starts, so each block reduces on its own.
    seg_starts = np.union1d(offsets[:-1], np.arange(0, total, BLOCK))
    seg_min = np.empty((num_perm, len(seg_starts)), dtype=np.uint64)
    buf = np.empty((num_perm, min(BLOCK, total)), dtype=np.uint64)
    x64 = hashes.astype(np.uint64, copy=False)
    for start in range(0, total, BLOCK):
        stop = min(start + BLOCK, total)
        lo, hi = np.searchsorted(seg_starts, [start, stop])
        view = buf[:, : stop - start]
        np.multiply(a, x64[start:stop], out=view)
        seg_min[:, lo:hi] = np.minimum.reduceat(view, seg_starts[lo:hi] - start, axis=1)
    if len(seg_starts) > n_docs:
        seg_min = np.minimum.reduceat(seg_min, np.searchsorted(seg_starts, offsets[:-1]), axis=1)
    seg_min >>= np.uint64(32)
    return np.ascontiguousarray(seg_min.T.astype(np.uint32))


def _chunks_by_chars(texts: Sequence[str], max_chars: int) -> Iterator[tuple[int, int]]:
    start, chars = 0, 0
    for i, t in enumerate(texts):
        chars += len(t)
        if chars >= max_chars:
            yield start, i + 1
            start, chars = i + 1, 0
    if start < len(texts):
        yield start, len(texts)


def iter_shingle_chunks(
    texts: Sequence[str], k: int, max_chars: int = CHARS_PER_CHUNK
) -> Iterator[tuple[int, int, np.ndarray, np.ndarray]]:
    """``(lo, hi, hashes, offsets)``: :func:`shingle_hashes` of ``texts[lo:hi]``, chunk by chunk."""
    for lo, hi in _chunks_by_chars(texts, max_chars):
        yield (lo, hi, *shingle_hashes(texts[lo:hi], k))


def minhash_signatures(
    texts: Sequence[str], shingle_size: int = 5, num_perm: int = 128, seed: int = 1
) -> np.ndarray:
    """MinHash signatures (len(texts), num_perm) uint32 of the texts' character shingles."""
    out = np.empty((len(texts), num_perm), dtype=np.uint32)
    for lo, hi, hashes, offsets in iter_shingle_chunks(texts, shingle_size):
        out[lo:hi] = signatures_from_hashes(hashes, offsets, num_perm, seed)
    return out


def shingle_sets(hashes: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-document sorted distinct shingles, truncated to 32 bits: ``(values uint32, offsets int64)``."""
    n = len(offsets) - 1
    doc = np.repeat(np.arange(n, dtype=np.uint64), np.diff(offsets))
    keys = sorted_unique((doc << np.uint64(32)) | (hashes & np.uint64(0xFFFFFFFF)))
    counts = np.bincount((keys >> np.uint64(32)).astype(np.int64), minlength=n)
    new_offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(counts, out=new_offsets[1:])
    return (keys & np.uint64(0xFFFFFFFF)).astype(np.uint32), new_offsets


def band_hashes(signatures: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """One 64-bit hash per band: (n_docs, bands) uint64 from (n_docs, >= bands*rows) signatures.

    Two 32-bit values are packed into each 64-bit word, and the words of a band
    are chained through splitmix64 (a bijection, so no information is lost
    before the final 64-bit value).
    """
    n = len(signatures)
    sig = signatures[:, : bands * rows].astype(np.uint64).reshape(n, bands, rows)
    words = [sig[:, :, r] << np.uint64(32) | sig[:, :, r + 1] for r in range(0, rows - 1, 2)]
    if rows % 2:
        words.append(sig[:, :, rows - 1])
    h = np.full((n, bands), 0xCBF29CE484222325, dtype=np.uint64)
    for w in words:
        h ^= w
        h = splitmix64(h)
    return h


def estimated_jaccard(sig_a: np.ndarray, sig_b: np.ndarray) -> np.ndarray:
    """Fraction of equal signature values, row by row: the MinHash estimate of Jaccard."""
    return (sig_a == sig_b).mean(axis=-1)


def candidate_probability(similarity: np.ndarray | float, bands: int, rows: int) -> np.ndarray:
    """P(two documents share a band) at a given Jaccard: 1 − (1 − s^rows)^bands."""
    s = np.asarray(similarity, dtype=np.float64)
    return 1.0 - (1.0 - s**rows) ** bands


def optimal_bands(
    threshold: float, num_perm: int, fp_weight: float = 0.5, fn_weight: float = 0.5
) -> tuple[int, int]:
    """(bands, rows) with bands·rows ≤ num_perm minimising the weighted FP + FN areas.

    FP area: ∫₀ᵗ P(candidate | s) ds; FN area: ∫ₜ¹ 1 − P(candidate | s) ds (the
    criterion datasketch uses). With 128 permutations and t = 0.8 and equal
    weights it picks 9 × 13, which misses many pairs just above the threshold;
    a larger ``fn_weight`` favours recall (verification then restores precision).
    """
    s_lo = np.linspace(0.0, threshold, 501)
    s_hi = np.linspace(threshold, 1.0, 501)
    best, best_err = (1, num_perm), float("inf")
    for b in range(1, num_perm + 1):
        for r in range(1, num_perm // b + 1):
            fp = np.trapezoid(candidate_probability(s_lo, b, r), s_lo)
            fn = np.trapezoid(1.0 - candidate_probability(s_hi, b, r), s_hi)
            err = fp_weight * fp + fn_weight * fn
            if err < best_err - 1e-12:
                best, best_err = (b, r), err
    return best


def bucket_pairs(keys: np.ndarray, ids: np.ndarray, max_bucket: int = 256) -> np.ndarray:
    """Pairs (i, j), i < j, of distinct ids whose keys are equal. Returns (n_pairs, 2) int64.

    Buckets up to ``max_bucket`` yield every pair; a larger bucket yields only
    (smallest id, other) edges, enough for clustering and bounded in size. The
    result does not depend on the order of the input.
    """
    if len(keys) < 2:
        return np.zeros((0, 2), dtype=np.int64)
    order = np.argsort(keys)  # not stable: pairs are put in (min, max) order below
    k = keys[order]
    dup = np.r_[False, k[1:] == k[:-1]]
    in_group = dup | np.r_[dup[1:], False]
    if not in_group.any():
        return np.zeros((0, 2), dtype=np.int64)
    # Only documents that share their key with another one go further.
    k, sid = k[in_group], ids[order[in_group]].astype(np.int64)
    starts = np.flatnonzero(np.r_[True, k[1:] != k[:-1]])
    sizes = np.diff(np.r_[starts, len(k)])
    out = []
    for size in np.unique(sizes).tolist():
        group_starts = starts[sizes == size]
        members = sid[group_starts[:, None] + np.arange(size)]
        if size <= max_bucket:
            i, j = np.triu_indices(size, 1)
            a, b = members[:, i].ravel(), members[:, j].ravel()
        else:
            first = members.min(axis=1, keepdims=True)
            a = np.broadcast_to(first, members.shape).ravel()
            b = members.ravel()
        out.append(np.stack([np.minimum(a, b), np.maximum(a, b)], axis=1))
    pairs = np.concatenate(out)
    return pairs[pairs[:, 0] != pairs[:, 1]]


def merge_pair_counts(
    keys: np.ndarray, counts: np.ndarray, new_keys: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Add one occurrence of each of ``new_keys`` to sorted distinct ``keys`` with ``counts``."""
    all_keys = np.concatenate([keys, new_keys])
    all_counts = np.concatenate([counts, np.ones(len(new_keys), dtype=np.int64)])
    order = np.argsort(all_keys, kind="stable")
    all_keys, all_counts = all_keys[order], all_counts[order]
    if len(all_keys) == 0:
        return all_keys, all_counts
    starts = np.flatnonzero(np.r_[True, all_keys[1:] != all_keys[:-1]])
    return all_keys[starts], np.add.reduceat(all_counts, starts)


def concatenated_ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """``np.concatenate([np.arange(s, s + n) for s, n in zip(starts, lengths)])``, vectorised."""
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    ends = np.cumsum(lengths)
    shift = np.repeat(starts - (ends - lengths), lengths)
    return np.arange(total, dtype=np.int64) + shift


def exact_jaccard_pairs(
    values: np.ndarray,
    offsets: np.ndarray,
    ia: np.ndarray,
    ib: np.ndarray,
    chunk: int = 1 << 22,
) -> np.ndarray:
    """Exact Jaccard of pairs of sets: set ``i`` is ``values[offsets[i]:offsets[i+1]]`` (sorted, distinct).

    For each pair (ia[k], ib[k]) both sets are tagged with k and sorted together;
    an element of the intersection shows up twice in a row.
    """
    lengths = np.diff(offsets)
    la, lb = lengths[ia], lengths[ib]
    result = np.ones(len(ia), dtype=np.float64)
    ends = np.cumsum(la + lb)
    i = 0
    while i < len(ia):
        j = max(int(np.searchsorted(ends, (ends[i - 1] if i else 0) + chunk, side="right")), i + 1)
        n = j - i
        tag = np.arange(n, dtype=np.uint64) << np.uint64(32)
        keys = np.concatenate(
            [
                np.repeat(tag, la[i:j]) | values[concatenated_ranges(offsets[ia[i:j]], la[i:j])],
                np.repeat(tag, lb[i:j]) | values[concatenated_ranges(offsets[ib[i:j]], lb[i:j])],
            ]
        )
        keys.sort()
        both = keys[1:][keys[1:] == keys[:-1]]
        inter = np.bincount((both >> np.uint64(32)).astype(np.int64), minlength=n)
        union = la[i:j] + lb[i:j] - inter
        result[i:j] = np.where(union > 0, inter / np.maximum(union, 1), 1.0)
        i = j
    return result


def connected_components(pairs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Union-find over (i, j) pairs: returns (nodes, root) with root = smallest id in each node's cluster.

    ``nodes`` are the sorted distinct ids that appear in ``pairs``; memory is
    proportional to the pairs, not to the corpus.
    """
    if len(pairs) == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    nodes, inverse = np.unique(pairs.ravel(), return_inverse=True)
    u, v = inverse.reshape(-1, 2).T
    parent = np.arange(len(nodes))
    # Min-label propagation with pointer jumping: converges to the smallest index per component.
    while True:
        m = np.minimum(parent[u], parent[v])
        new = parent.copy()
        np.minimum.at(new, u, m)
        np.minimum.at(new, v, m)
        while True:  # pointer jumping: parent[x] <- parent[parent[x]]
            jumped = new[new]
            if np.array_equal(jumped, new):
                break
            new = jumped
        if np.array_equal(new, parent):
            break
        parent = new
    return nodes, nodes[parent]
