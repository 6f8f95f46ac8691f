"""Scale benchmark of TAGS: knowledge-tree build and tree-information sampling.

Goals (issue 4): a tree over 100k unique concepts in <= 5 min with memory linear in the
number of concepts, and selecting 5% of 1M rows with the global sampler in <= 60 s, on 2 cores.

What is timed, exactly:

1. `tree_build` — `KnowledgeTree.build` on N unique concept strings with *precomputed*
   384-d unit vectors (a synthetic mixture: 2,000 random directions + noise, so clusters
   exist), default config (ratio 0.1, "terms" naming). Everything after embedding is timed:
   canonicalization, de-duplication, k-means level by level, naming, assembling. Run at N/4,
   N/2 and N to show that time and peak memory grow linearly.
2. `minilm_embed` — the real bundled all-MiniLM-L6-v2 on 2,000 concept strings (1,000 in
   --quick) made of real taxonomy labels (../shared/data/taxonomy) when present; reported as
   concepts/s and extrapolated to N. Embedding is not in (1) because on 2 CPU cores it alone
   would take minutes for 100k strings; a TEI endpoint or a GPU changes it completely.
3. `sampler_global` — `sample_global` on M rows (1-5 leaves each, Zipf over the leaves of the
   tree from (1); quality ~ Beta(2, 2)), budget 5%: contribution-matrix build + lazy greedy.
   Also `sampler_aligned` (KL, μ=1) against a target of rows from 3 top-level branches.

Usage:
    python benchmarks/tags_scale.py            # 100k concepts, 1M rows
    python benchmarks/tags_scale.py --quick    # 10k concepts, 100k rows

Each step prints wall seconds, process CPU seconds (what the step costs on a machine shared
with other jobs: wall time on a busy 2-core box can be several times higher) and its peak RSS; the last line is the headline
`tags_sampler_1m_5pct_seconds: <value>` (`tags_sampler_quick_5pct_seconds` with --quick).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from _measure import peak_rss_mb, reset_peak

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
DATA = REPO.parent / "shared" / "data"






def synthetic_concepts(n: int, dim: int = 384, seed: int = 0) -> tuple[list[str], np.ndarray]:
    """N distinct concept names and clustered unit vectors (memory O(n·dim))."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(2000, dim)).astype(np.float32)
    which = rng.integers(0, len(centers), n)
    x = centers[which] + 0.8 * rng.normal(size=(n, dim)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    words = ["analysis", "python", "sorting", "history", "poetry", "algebra", "biology", "finance", "law", "music",
             "sql", "travel", "health", "physics", "marketing", "grammar", "chess", "climate", "ethics", "design"]
    names = [f"{words[c % 20]} {words[(c // 20) % 20]} topic {c} concept {i}" for i, c in enumerate(which.tolist())]
    return names, x


def real_concepts(limit: int) -> list[str]:
    path = DATA / "taxonomy" / "category_taxonomies.jsonl"
    labels: list[str] = []
    if path.is_file():
        with open(path, encoding="utf-8") as f:
            labels = [json.loads(line)["label"] for line in f]
    base = labels or ["binary search", "prime numbers", "french grammar", "tax law"]
    mods = ["basics of", "advanced", "applied", "history of", "exercises on", "common mistakes in"]
    out = [f"{m} {b}" for m in mods for b in base]
    return out[:limit]


def pool_rows(tree, m: int, seed: int = 1):
    """CSR rows × nodes of 1-5 Zipf-drawn leaves per row, and quality scores."""
    from scipy.sparse import csr_matrix

    rng = np.random.default_rng(seed)
    leaves = tree.leaves
    ranks = rng.permutation(len(leaves))
    p = 1.0 / (1.0 + ranks) ** 0.9
    p /= p.sum()
    k = rng.integers(1, 6, m)
    cols = rng.choice(leaves, size=int(k.sum()), p=p)
    indptr = np.concatenate([[0], np.cumsum(k)])
    mat = csr_matrix((np.ones(len(cols)), cols, indptr), shape=(m, tree.n_nodes))
    mat.sum_duplicates()
    mat.data[:] = 1.0
    return mat, rng.beta(2, 2, m)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="10k concepts, 100k rows")
    ap.add_argument("--concepts", type=int, default=None)
    ap.add_argument("--rows", type=int, default=None)
    ap.add_argument("--skip-embed", action="store_true", help="skip the MiniLM timing (no model load)")
    args = ap.parse_args()
    n_concepts = args.concepts or (10_000 if args.quick else 100_000)
    n_rows = args.rows or (100_000 if args.quick else 1_000_000)

    from hf_prefsel.tags.sample import AlignedSamplerConfig, GlobalSamplerConfig, sample_aligned, sample_global
    from hf_prefsel.tags.metric import tree_information
    from hf_prefsel.tags.tree import KnowledgeTree, KnowledgeTreeConfig

    print(f"# cores visible: {os.cpu_count()}, load average: {os.getloadavg()[0]:.1f}")
    tree = None
    for size in sorted({max(1000, n_concepts // 4), max(1000, n_concepts // 2), n_concepts}):
        names, vecs = synthetic_concepts(size)
        reset_peak()
        base = peak_rss_mb()
        t0, c0 = time.perf_counter(), time.process_time()
        tree = KnowledgeTree.build(names, KnowledgeTreeConfig(), embeddings=vecs)
        dt, cpu = time.perf_counter() - t0, time.process_time() - c0
        levels = ",".join(str(s["nodes"]) for s in tree.level_stats)
        print(f"tree_build concepts={size} seconds={dt:.1f} cpu_seconds={cpu:.1f} peak_rss_mb={peak_rss_mb():.0f} (before {base:.0f}) "
              f"depth={tree.depth} nodes={tree.n_nodes} levels={levels}")
        del names, vecs
    assert tree is not None

    if not args.skip_embed:
        texts = real_concepts(1000 if args.quick else 2000)
        from hf_prefsel.embed import Embedder

        emb = Embedder()
        emb.encode(texts[:8])  # load the model outside the timing
        t0 = time.perf_counter()
        emb.encode(texts)
        dt = time.perf_counter() - t0
        rate = len(texts) / dt
        print(f"minilm_embed concepts={len(texts)} seconds={dt:.1f} rate={rate:.0f}/s extrapolated_{n_concepts}={n_concepts / rate:.0f}s")

    rows, quality = pool_rows(tree, n_rows)
    budget = 0.05
    reset_peak()
    base = peak_rss_mb()
    c0 = time.process_time()
    res = sample_global(tree, rows, quality, GlobalSamplerConfig(ratio=budget))
    cpu = time.process_time() - c0
    rand = np.random.default_rng(2).choice(n_rows, len(res.indices), replace=False)
    info_rand = tree_information(tree, rows, quality, rand)
    print(f"sampler_global rows={n_rows} selected={len(res.indices)} seconds={res.seconds:.1f} cpu_seconds={cpu:.1f} peak_rss_mb={peak_rss_mb():.0f} (before {base:.0f}) "
          f"rescored={res.evaluations} I(S)={res.information:.1f} I(random)={info_rand:.1f} "
          f"gains_nonincreasing={bool(np.all(np.diff(res.gains) <= 1e-9 * max(1.0, res.gains[0])))}")

    top = tree.children(tree.root)[:3]
    anc = tree.ancestor_matrix()
    in_top = np.asarray(anc[:, top].sum(axis=1)).reshape(-1) > 0
    row_hits = np.asarray(rows[:, np.flatnonzero(in_top)].sum(axis=1)).reshape(-1) > 0
    target_rows = rows[np.flatnonzero(row_hits)[:5000]]
    reset_peak()
    base = peak_rss_mb()
    c0 = time.process_time()
    res_a = sample_aligned(tree, rows, target_rows, quality, AlignedSamplerConfig(ratio=budget, mu=1.0))
    cpu = time.process_time() - c0
    from hf_prefsel.tags.metric import kl_divergence, leaf_distribution

    kl_global = kl_divergence(leaf_distribution(tree, target_rows), leaf_distribution(tree, rows, res.indices))
    print(f"sampler_aligned rows={n_rows} seconds={res_a.seconds:.1f} cpu_seconds={cpu:.1f} peak_rss_mb={peak_rss_mb():.0f} (before {base:.0f}) "
          f"KL(target||global)={kl_global:.3f} KL(target||aligned)={res_a.kl_to_target:.3f} I(aligned)={res_a.information:.1f}")
    name = "tags_sampler_1m_5pct_seconds" if n_rows == 1_000_000 else "tags_sampler_quick_5pct_seconds"
    print(f"{name}: {res.seconds:.2f}")


if __name__ == "__main__":
    main()
