"""InsTag-style tag normalization for TACOS: frequency filter, rule, semantic and association aggregation.

Open tagging produces tens of thousands of spellings of a few thousand intentions ("Math", "math problem",
"Mathematical calculation", ...). Clustering and quotas only make sense on a compact vocabulary, so
`TagNormalizer` learns a raw-tag -> canonical-tag map on the whole tagged corpus (`fit`) and applies it row by row
(`transform`, or as a `datasets.map` callable).

All four steps of InsTag (Lu et al., 2023) as restated by the TACOS authors are here, each switchable:

1. frequency filtering: drop tags seen in fewer than `alpha` samples (default 20, scaled down for small data);
2. rule aggregation: lowercase, every run of non-word characters to one space, stem *every* word;
3. semantic aggregation: embed tags, merge groups whose cosine similarity passes a threshold (single linkage, as
   DBSCAN with `min_samples=1`), keeping the most frequent raw spelling as the name;
4. association aggregation: FP-growth over per-sample tag sets; a tag that (almost) always comes with another one
   (`confidence(a -> b) >= min_confidence`, `support >= min_support`) is merged into it, repeated until stable.

Everything runs on integer ids with numpy/pyarrow, so fitting 1M tag occurrences takes seconds plus the embedding
of the tags that survive frequency filtering.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any, Callable, Iterable, Literal, Mapping, Sequence

import numpy as np

from ..errors import ConfigError, DataError, DependencyError, MissingColumnError
from .vocabulary import NormalizationStep, TagVocabulary

if TYPE_CHECKING:  # pragma: no cover
    from datasets import Dataset

    from ..embed import Embedder

#: Size of Alpaca, the corpus the InsTag/TACOS thresholds (alpha=20, min support 40) were set for.
ALPACA_SIZE = 52_002

_SEPARATORS = re.compile(r"[\W_]+")


# ---------------------------------------------------------------------------------------------------------- config


@dataclass
class TagNormalizerConfig:
    """Settings of [`TagNormalizer`]; every step can be switched off.

    Defaults run all four InsTag steps. [`TagNormalizerConfig.released_code`] gives what the released TACOS code
    runs (frequency filter and rule aggregation only).

    Thresholds given as counts (`alpha`, `min_support`) were chosen for Alpaca's 52k samples. On a smaller corpus
    the same count would throw away nearly everything, so they are scaled linearly with the number of samples
    (a tag's count grows linearly with corpus size, so this keeps the same *relative* frequency threshold):
    `effective = clip(round(value * n_samples / reference_size), floor, value)`. They are never raised above the
    configured value for larger corpora. Set `reference_size=None` to use the values as given.

    Args:
        tags_column (`str`, defaults to `"tags"`):
            Column holding each row's raw tags as a list of strings (`[]` for rows whose tagging failed).
        output_column (`str`, defaults to `"canonical_tags"`):
            Column `transform` adds: the row's canonical tags, deduplicated, in first-seen order.
        frequency_filter (`bool`, defaults to `True`):
            Drop tags seen in fewer than `alpha` samples (InsTag step 1). Rare tags are mostly noise and would
            each become a cluster point of their own.
        alpha (`int`, defaults to `20`):
            InsTag/TACOS frequency threshold for a 52k-sample corpus (scaled, see above).
        min_alpha (`int`, defaults to `1`):
            Floor of the scaled `alpha`. With the default 1, corpora under ~1.3k samples keep every tag: there a
            count of 1 is not evidence of noise.
        frequency_after_rules (`bool`, defaults to `False`):
            Count frequencies after rule aggregation instead of on raw strings. InsTag filters raw strings first
            (the default), which drops rare spellings ("Math-Problem") of frequent tags; `True` keeps them.
        rule_aggregation (`bool`, defaults to `True`):
            InsTag step 2: merge tags equal after lowercasing, non-word runs (underscore included) -> one space,
            and stemming.
        lowercase (`bool`, defaults to `True`):
            Lowercase as part of rule aggregation; the canonical names are lowercased too.
        stemmer (`str` or `None`, defaults to `"porter"`):
            Snowball algorithm applied to every word (`"porter"` is the classic Porter stemmer the TACOS code uses
            through NLTK; `"english"` is Porter2). `None` disables stemming. The released code stems the whole
            tag as one string, so only its last word; we stem each word.
        semantic_aggregation (`bool`, defaults to `True`):
            InsTag step 3: embed tags and merge near-duplicates.
        semantic_threshold (`float`, defaults to `0.85`):
            Minimum cosine similarity for two tags to be merged (single linkage). InsTag's 0.05 DBSCAN distance
            was for PhraseBERT; for the default MiniLM we measured 20 hand-labelled synonym pairs ("poem
            writing" / "poetry writing") and 20 related-but-different pairs ("python programming" / "java
            programming"): no different pair scored above 0.78, 7 of 20 synonyms scored above 0.85 (13 above
            0.80). Single linkage chains, so precision matters more than recall here.
        semantic_neighbours (`int`, defaults to `16`):
            Nearest neighbours searched per tag when building the similarity graph.
        embedding_model (`str`, *optional*):
            sentence-transformers model for the semantic step; defaults to the bundled all-MiniLM-L6-v2.
        association_aggregation (`bool`, defaults to `True`):
            InsTag step 4: merge a tag into another when it (almost) never appears without it.
        min_support (`int`, defaults to `40`):
            Minimum number of samples holding both tags of a rule (InsTag; scaled, see above).
        min_support_floor (`int`, defaults to `5`):
            Floor of the scaled `min_support`: with fewer co-occurrences a 99% confidence is not evidence.
        min_confidence (`float`, defaults to `0.99`):
            Minimum `support(a, b) / support(a)` for merging `a` into `b` (InsTag).
        association_max_rounds (`int`, defaults to `10`):
            Merging changes the tag sets, which can create new rules; rounds repeat until nothing merges or this
            many rounds ran ("recursively merge" in InsTag).
        reference_size (`int` or `None`, defaults to `52002`):
            Corpus size the count thresholds were set for (Alpaca). `None` disables scaling.
        unknown_tags (`"drop"` or `"keep"`, defaults to `"drop"`):
            What `transform` does with a tag never seen by `fit` whose rule form matches no known tag: drop it, or
            keep its cleaned spelling as a canonical tag of its own.
    """

    tags_column: str = "tags"
    output_column: str = "canonical_tags"
    frequency_filter: bool = True
    alpha: int = 20
    min_alpha: int = 1
    frequency_after_rules: bool = False
    rule_aggregation: bool = True
    lowercase: bool = True
    stemmer: str | None = "porter"
    semantic_aggregation: bool = True
    semantic_threshold: float = 0.85
    semantic_neighbours: int = 16
    embedding_model: str | None = None
    association_aggregation: bool = True
    min_support: int = 40
    min_support_floor: int = 5
    min_confidence: float = 0.99
    association_max_rounds: int = 10
    reference_size: int | None = ALPACA_SIZE
    unknown_tags: Literal["drop", "keep"] = "drop"

    def __post_init__(self) -> None:
        for name in ("alpha", "min_alpha", "min_support", "min_support_floor", "association_max_rounds", "semantic_neighbours"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"TagNormalizerConfig.{name} must be an integer >= 1, got {value!r}.")
        if not 0.0 < self.min_confidence <= 1.0:
            raise ConfigError(f"TagNormalizerConfig.min_confidence must be in (0, 1], got {self.min_confidence!r}.")
        if not -1.0 <= self.semantic_threshold <= 1.0:
            raise ConfigError(
                f"TagNormalizerConfig.semantic_threshold is a cosine similarity in [-1, 1], got {self.semantic_threshold!r}."
            )
        if self.reference_size is not None and self.reference_size < 1:
            raise ConfigError(f"TagNormalizerConfig.reference_size must be >= 1 or None, got {self.reference_size!r}.")
        if self.unknown_tags not in ("drop", "keep"):
            raise ConfigError(f"TagNormalizerConfig.unknown_tags must be 'drop' or 'keep', got {self.unknown_tags!r}.")
        if self.stemmer is not None:
            _stem_function(self.stemmer)  # fail now, not after an hour of tagging

    @classmethod
    def released_code(cls, **overrides: Any) -> TagNormalizerConfig:
        """The steps the released TACOS code runs: frequency filter + rule aggregation (no semantic/association)."""
        base: dict[str, Any] = {"semantic_aggregation": False, "association_aggregation": False}
        base.update(overrides)
        return cls(**base)

    def effective_alpha(self, n_samples: int) -> int:
        """The frequency threshold used for a corpus of `n_samples` rows (see the class docstring)."""
        return _scaled(self.alpha, n_samples, self.reference_size, self.min_alpha)

    def effective_min_support(self, n_samples: int) -> int:
        """The association min support used for a corpus of `n_samples` rows (see the class docstring)."""
        return _scaled(self.min_support, n_samples, self.reference_size, self.min_support_floor)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TagNormalizerConfig:
        """Build from a dict, ignoring keys this version does not know (written by a newer version)."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def _scaled(value: int, n_samples: int, reference: int | None, floor: int) -> int:
    if reference is None:
        return value
    return int(max(min(floor, value), min(value, round(value * n_samples / reference))))


# ---------------------------------------------------------------------------------------------------------- rules

_STEMMERS: dict[str, Callable[[str], str]] = {}


def _stem_function(algorithm: str) -> Callable[[str], str]:
    """A cached word -> stem function for a Snowball algorithm (stems of a corpus repeat a lot)."""
    if algorithm not in _STEMMERS:
        try:
            import snowballstemmer
        except ImportError as exc:  # pragma: no cover - core dependency
            raise DependencyError("snowballstemmer", "tacos", "Stemming tags in rule aggregation") from exc
        if algorithm not in snowballstemmer.algorithms():
            raise ConfigError(
                f"Unknown stemmer {algorithm!r}. Use one of {', '.join(snowballstemmer.algorithms())}, or None to "
                "disable stemming."
            )
        stemmer = snowballstemmer.stemmer(algorithm)
        cache: dict[str, str] = {}

        def stem(word: str) -> str:
            out = cache.get(word)
            if out is None:
                out = cache[word] = stemmer.stemWord(word)
            return out

        _STEMMERS[algorithm] = stem
    return _STEMMERS[algorithm]


def clean_tag(tag: str, lowercase: bool = True) -> str:
    """Lowercase (optionally) and turn every run of non-word characters, underscore included, into one space.

    Example:
        >>> clean_tag("Code_Generation / Python!")
        'code generation python'
    """
    text = tag.lower() if lowercase else tag
    return " ".join(_SEPARATORS.sub(" ", text).split())


def rule_key(tag: str, lowercase: bool = True, stemmer: str | None = "porter") -> str:
    """The rule-aggregation key of a tag: `clean_tag`, then every word stemmed.

    Tags with the same key are merged. Returns `""` for a tag with no word characters.

    Example:
        >>> rule_key("Mathematical Calculations")
        'mathemat calcul'
    """
    words = clean_tag(tag, lowercase).split()
    if stemmer is not None:
        stem = _stem_function(stemmer)
        words = [stem(w) for w in words]
    return " ".join(words)


_TAG_EMBEDDERS: dict[str | None, Embedder] = {}


def tag_embedder(model_name_or_path: str | None = None) -> Embedder:
    """The process-wide `Embedder` used for tags when none is passed: batch size 256 and a 100k-entry cache.

    Tags are a few tokens long; on 2 CPU cores batches of 256 took half the CPU time of 64 for MiniLM (per-batch
    overhead dominates such short inputs). Sharing one instance lets tag clustering reuse the vectors that
    semantic aggregation computed for the same canonical tags.
    """
    if model_name_or_path not in _TAG_EMBEDDERS:
        from ..embed import Embedder

        _TAG_EMBEDDERS[model_name_or_path] = Embedder(model_name_or_path, batch_size=256, cache_size=100_000)
    return _TAG_EMBEDDERS[model_name_or_path]


# ---------------------------------------------------------------------------------------------------------- FP-growth


def fpgrowth(
    transactions: Iterable[Sequence[int]], min_support: int, max_len: int | None = None
) -> dict[tuple[int, ...], int]:
    """Frequent itemsets by FP-growth (Han et al., 2000): every itemset in at least `min_support` transactions.

    A compact implementation over integer items. Identical transactions are merged into one weighted
    transaction first; items are renumbered by decreasing frequency so every transaction is already in tree
    order; and at the last level (`len == max_len`) items are counted without building a tree, which keeps the
    pair-only mining used by association aggregation fast.

    Why not a library: mlxtend's `fpgrowth` needs a one-hot pandas DataFrame (samples x tags) and pulls in
    matplotlib; the small PyPI FP-growth packages are unmaintained (last releases 2016-2020).

    Args:
        transactions (iterable of sequences of `int`): item ids per transaction; duplicates inside one are ignored.
        min_support (`int`): minimum number of transactions containing the itemset (>= 1).
        max_len (`int`, *optional*): longest itemset to mine; `None` = no limit.

    Returns:
        `dict[tuple[int, ...], int]`: sorted itemset -> support, shorter itemsets first.

    Example:
        >>> fpgrowth([[1, 2], [1, 2, 3], [1]], min_support=2)
        {(1,): 3, (2,): 2, (1, 2): 2}
    """
    if min_support < 1:
        raise ConfigError(f"min_support must be >= 1, got {min_support}.")
    weighted: Counter[tuple[int, ...]] = Counter(tuple(set(t)) for t in transactions)
    counts: Counter[int] = Counter()
    for items, w in weighted.items():
        for i in items:
            counts[i] += w
    item_of_rank = [i for i, c in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])) if c >= min_support]
    rank = {i: r for r, i in enumerate(item_of_rank)}
    ranked: Counter[tuple[int, ...]] = Counter()
    for items, w in weighted.items():
        r = tuple(sorted(rank[i] for i in items if i in rank))
        if r:
            ranked[r] += w
    found = _fpgrowth_ranked(ranked, min_support, max_len)
    out = {tuple(sorted(item_of_rank[r] for r in itemset)): c for itemset, c in found.items()}
    return dict(sorted(out.items(), key=lambda kv: (len(kv[0]), kv[0])))


def _fpgrowth_ranked(
    weighted: Mapping[tuple[int, ...], int], min_support: int, max_len: int | None
) -> dict[tuple[int, ...], int]:
    """FP-growth on transactions whose items are ranks (0 = most frequent), each sorted ascending."""
    out: dict[tuple[int, ...], int] = {}
    _mine(list(weighted.items()), min_support, max_len, (), out)
    return out


def _mine(
    weighted: list[tuple[tuple[int, ...], int]],
    min_support: int,
    max_len: int | None,
    suffix: tuple[int, ...],
    out: dict[tuple[int, ...], int],
) -> None:
    counts: dict[int, int] = {}
    for items, w in weighted:
        for i in items:
            counts[i] = counts.get(i, 0) + w
    frequent = {i for i, c in counts.items() if c >= min_support}
    for i in frequent:
        out[suffix + (i,)] = counts[i]
    if not frequent or (max_len is not None and len(suffix) + 1 >= max_len):
        return
    # FP-tree over the frequent items; transactions are already in a fixed global order (ascending rank), which
    # is all FP-growth needs to be correct. Node = [item, count, parent, children].
    root: list[Any] = [None, 0, None, {}]
    header: dict[int, list[list[Any]]] = {i: [] for i in frequent}
    for items, w in weighted:
        node = root
        for i in items:
            if i not in frequent:
                continue
            child = node[3].get(i)
            if child is None:
                child = [i, 0, node, {}]
                node[3][i] = child
                header[i].append(child)
            child[1] += w
            node = child
    # Each item's conditional pattern base: the prefix paths above its nodes, weighted by the node counts.
    for i in frequent:
        base: list[tuple[tuple[int, ...], int]] = []
        for node in header[i]:
            path = []
            parent = node[2]
            while parent[0] is not None:
                path.append(parent[0])
                parent = parent[2]
            if path:
                path.reverse()
                base.append((tuple(path), node[1]))
        if base:
            _mine(base, min_support, max_len, suffix + (i,), out)


# ---------------------------------------------------------------------------------------------------------- normalizer


@dataclass
class _Corpus:
    """The fitted corpus as integer arrays: one entry per distinct (sample, raw tag) occurrence."""

    raw: list[str]  # raw id -> string
    sample: np.ndarray  # occurrence -> sample index (int64)
    raw_id: np.ndarray  # occurrence -> raw id (int64)
    n_samples: int
    raw_counts: np.ndarray = field(init=False)
    raw_rank: np.ndarray = field(init=False)  # lexicographic rank of each raw string, for deterministic ties

    def __post_init__(self) -> None:
        self.raw_counts = np.bincount(self.raw_id, minlength=len(self.raw)).astype(np.int64)
        order = np.argsort(np.asarray(self.raw, dtype=object), kind="stable")
        self.raw_rank = np.empty(len(self.raw), dtype=np.int64)
        self.raw_rank[order] = np.arange(len(self.raw))


class TagNormalizer:
    """Learn a raw tag -> canonical tag map on a tagged corpus and apply it (InsTag normalization).

    `fit` sees the whole corpus (frequencies and co-occurrences are corpus statistics); the instance is then a
    picklable callable for `Dataset.map(batched=True)` that adds `config.output_column`. Pickling keeps only the
    config and the vocabulary, so `datasets` fingerprints and caches the map.

    Rows left without any canonical tag (tagging failed, or every tag was filtered) get `[]`; InsTag drops them,
    which you can do with `ds.filter(lambda r: len(r["canonical_tags"]) > 0)`.

    Args:
        config ([`TagNormalizerConfig`], *optional*): settings; defaults run all four steps.
        embedder ([`Embedder`], *optional*): used by semantic aggregation. Defaults to the shared
            [`tag_embedder`], which [`TagClusterer`] also uses, so canonical tags are embedded only once.
        vocabulary ([`TagVocabulary`], *optional*): a fitted vocabulary (e.g. from `TagVocabulary.from_pretrained`),
            making the normalizer ready to `transform` without `fit`.

    Example:
        >>> normalizer = TagNormalizer()
        >>> ds = normalizer.fit_transform(ds)          # adds "canonical_tags"
        >>> print(normalizer.vocabulary.report())      # compression per step
        >>> normalizer.vocabulary.save_pretrained("tag_vocabulary")
    """

    def __init__(
        self,
        config: TagNormalizerConfig | None = None,
        *,
        embedder: Embedder | None = None,
        vocabulary: TagVocabulary | None = None,
    ):
        if config is None and vocabulary is not None:
            config = TagNormalizerConfig.from_dict(vocabulary.config)
        self.config = config or TagNormalizerConfig()
        self._embedder = embedder
        self.vocabulary = vocabulary

    @classmethod
    def from_vocabulary(cls, vocabulary: TagVocabulary, **overrides: Any) -> TagNormalizer:
        """A ready-to-transform normalizer from a fitted (e.g. downloaded) vocabulary."""
        config = TagNormalizerConfig.from_dict({**vocabulary.config, **overrides})
        return cls(config, vocabulary=vocabulary)

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            self._embedder = tag_embedder(self.config.embedding_model)
        return self._embedder

    def __getstate__(self) -> dict[str, Any]:
        return {"config": self.config, "vocabulary": self.vocabulary, "_embedder": None}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def __repr__(self) -> str:
        fitted = f"{self.vocabulary.n_canonical} canonical tags" if self.vocabulary is not None else "not fitted"
        return f"TagNormalizer({fitted})"

    # ------------------------------------------------------------------ fit

    def fit(self, data: Dataset | Sequence[Sequence[str] | None]) -> TagNormalizer:
        """Learn the vocabulary from a tagged `Dataset` (column `config.tags_column`) or a list of tag lists.

        Returns:
            `self`, with `self.vocabulary` set.

        Raises:
            [`MissingColumnError`]: the dataset has no `config.tags_column`.
            [`DataError`]: a row's tags are not a list of strings.
        """
        cfg = self.config
        corpus = self._read_corpus(data)
        n = corpus.n_samples
        steps: list[NormalizationStep] = []
        group = np.arange(len(corpus.raw), dtype=np.int64)  # raw id -> group id (-1 = dropped)
        blank = np.array([not r.strip() for r in corpus.raw], dtype=bool)
        group[blank] = -1
        group = _compact(group)

        def run(name: str, enabled: bool, params: dict[str, Any], fn: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
            before = _n_groups(group)
            start = time.perf_counter()
            new = _compact(fn(group)) if enabled else group
            steps.append(
                NormalizationStep(
                    name=name,
                    enabled=enabled,
                    unique_before=before,
                    unique_after=_n_groups(new),
                    params=params if enabled else {},
                    seconds=round(time.perf_counter() - start, 3),
                )
            )
            return new

        alpha = cfg.effective_alpha(n)
        freq_params = {
            "alpha": alpha,
            "alpha_configured": cfg.alpha,
            "counted_on": "rule keys" if cfg.frequency_after_rules else "raw tags",
        }

        def frequency(g: np.ndarray) -> np.ndarray:
            counts = _group_counts(corpus, g)
            keep = counts >= alpha
            out = g.copy()
            valid = out >= 0
            out[valid] = np.where(keep[out[valid]], out[valid], -1)
            return out

        def rules(g: np.ndarray) -> np.ndarray:
            keys: dict[str, int] = {}
            out = np.full_like(g, -1)
            for raw_id in np.flatnonzero(g >= 0):
                key = rule_key(corpus.raw[raw_id], cfg.lowercase, cfg.stemmer)
                if key:
                    out[raw_id] = keys.setdefault(key, len(keys))
            return out

        if not cfg.frequency_after_rules:
            group = run("frequency_filter", cfg.frequency_filter, freq_params, frequency)
        group = run(
            "rule_aggregation", cfg.rule_aggregation, {"lowercase": cfg.lowercase, "stemmer": cfg.stemmer}, rules
        )
        if cfg.frequency_after_rules:
            group = run("frequency_filter", cfg.frequency_filter, freq_params, frequency)

        def semantic(g: np.ndarray) -> np.ndarray:
            from ..embed import near_duplicate_groups

            reps = _representatives(corpus, g)
            names = [clean_tag(corpus.raw[r], cfg.lowercase) or corpus.raw[r] for r in reps]
            if len(names) < 2:
                return g
            vectors = self.embedder.encode(names)
            merged = near_duplicate_groups(vectors, cfg.semantic_threshold, neighbours=cfg.semantic_neighbours)
            out = g.copy()
            valid = out >= 0
            out[valid] = merged[out[valid]]
            return out

        group = run(
            "semantic_aggregation",
            cfg.semantic_aggregation,
            {
                "threshold": cfg.semantic_threshold,
                "model": cfg.embedding_model or "all-MiniLM-L6-v2 (bundled)",
                "neighbours": cfg.semantic_neighbours,
            },
            semantic,
        )

        min_support = cfg.effective_min_support(n)
        association_info: dict[str, Any] = {}

        def association(g: np.ndarray) -> np.ndarray:
            out, info = _associate(corpus, g, min_support, cfg.min_confidence, cfg.association_max_rounds)
            association_info.update(info)
            return out

        group = run(
            "association_aggregation",
            cfg.association_aggregation,
            {
                "min_support": min_support,
                "min_support_configured": cfg.min_support,
                "min_confidence": cfg.min_confidence,
                "max_rounds": cfg.association_max_rounds,
            },
            association,
        )
        if cfg.association_aggregation:
            steps[-1].params.update(association_info)

        self.vocabulary = self._build_vocabulary(corpus, group, steps)
        return self

    def _read_corpus(self, data: Any) -> _Corpus:
        import pyarrow as pa
        import pyarrow.compute as pc

        column = self.config.tags_column
        try:
            from datasets import Dataset
        except ImportError:  # pragma: no cover - core dependency
            Dataset = ()  # type: ignore[assignment,misc]
        if isinstance(data, Dataset):
            if column not in data.column_names:
                raise MissingColumnError(column, data.column_names)
            arr = data.with_format("arrow")[column]
        else:
            if isinstance(data, (str, bytes)) or not isinstance(data, Iterable):
                raise DataError(
                    f"TagNormalizer.fit expects a datasets.Dataset or a list of tag lists, got {type(data).__name__}."
                )
            rows = list(data)
            for i, row in enumerate(rows):
                if isinstance(row, str):
                    raise DataError(
                        f"Row {i} of the tag lists is a string ({row[:40]!r}); each row must be a list of tags, "
                        "e.g. [['math', 'reasoning'], ['coding']]."
                    )
            try:
                arr = pa.array(rows, type=pa.list_(pa.string()))
            except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
                raise DataError(
                    f"Tags must be lists of strings (tag names only, explanations elsewhere): {exc}. Extract the "
                    "names first, e.g. [t['tag'] for t in row]."
                ) from exc
        if isinstance(arr, pa.ChunkedArray):
            arr = arr.combine_chunks() if arr.num_chunks != 1 else arr.chunk(0)
        if pa.types.is_null(arr.type) or (
            (pa.types.is_list(arr.type) or pa.types.is_large_list(arr.type)) and pa.types.is_null(arr.type.value_type)
        ):
            arr = arr.cast(pa.list_(pa.string()))  # every row is None or [] (e.g. all tagging failed)
        if not (pa.types.is_list(arr.type) or pa.types.is_large_list(arr.type)) or not (
            pa.types.is_string(arr.type.value_type) or pa.types.is_large_string(arr.type.value_type)
        ):
            raise DataError(
                f"Column {column!r} has type {arr.type}; expected a list of strings (tag names only). If it holds "
                "[{'tag', 'explanation'}] records, map it to names first."
            )
        n = len(arr)
        lengths = pc.fill_null(pc.list_value_length(arr), 0).to_numpy(zero_copy_only=False).astype(np.int64)
        flat = pc.list_flatten(arr)
        sample = np.repeat(np.arange(n, dtype=np.int64), lengths)
        if flat.null_count:
            valid = flat.is_valid().to_numpy(zero_copy_only=False)
            flat = flat.filter(pa.array(valid))
            sample = sample[valid]
        encoded = pc.dictionary_encode(flat)
        raw = encoded.dictionary.to_pylist()
        raw_id = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
        if len(raw_id):  # one occurrence per (sample, tag), as frequencies count samples
            key = _unique_int(sample * max(len(raw), 1) + raw_id)
            sample, raw_id = key // max(len(raw), 1), key % max(len(raw), 1)
        return _Corpus(raw=raw, sample=sample, raw_id=raw_id, n_samples=n)

    def _build_vocabulary(self, corpus: _Corpus, group: np.ndarray, steps: list[NormalizationStep]) -> TagVocabulary:
        cfg = self.config
        reps = _representatives(corpus, group)
        names = [self._canonical_name(corpus.raw[r]) for r in reps]
        # Distinct groups whose names collide (possible only with exotic settings) become one canonical tag.
        name_index: dict[str, int] = {}
        to_final = np.array([name_index.setdefault(name, len(name_index)) for name in names], dtype=np.int64)
        final = np.full_like(group, -1)
        final[group >= 0] = to_final[group[group >= 0]]
        counts = _group_counts(corpus, final)
        canonical_counts = dict(
            sorted(((name, int(counts[i])) for name, i in name_index.items()), key=lambda kv: (-kv[1], kv[0]))
        )
        raw_to_canonical: dict[str, str | None] = {
            raw: (names[g] if g >= 0 else None) for raw, g in zip(corpus.raw, group.tolist())
        }
        occ = final[corpus.raw_id] if len(corpus.raw_id) else np.zeros(0, dtype=np.int64)
        samples_with_tags = int(len(_unique_int(corpus.sample[occ >= 0])))
        key_to_canonical: dict[str, str] = {}
        if cfg.rule_aggregation:
            # Unseen spellings at transform time are matched through their rule key to the canonical tag whose
            # members have that key (the most frequent such tag if several).
            best: dict[str, tuple[int, str]] = {}
            for raw_id in np.flatnonzero(group >= 0):
                key = rule_key(corpus.raw[raw_id], cfg.lowercase, cfg.stemmer)
                name = names[group[raw_id]]
                score = (int(corpus.raw_counts[raw_id]), name)
                if key and (key not in best or score > best[key]):
                    best[key] = score
            key_to_canonical = {k: v[1] for k, v in best.items()}
        n_raw_samples = len(_unique_int(corpus.sample))
        return TagVocabulary(
            raw_to_canonical=raw_to_canonical,
            canonical_counts=canonical_counts,
            raw_counts={raw: int(c) for raw, c in zip(corpus.raw, corpus.raw_counts)},
            steps=steps,
            config=cfg.to_dict(),
            n_samples=corpus.n_samples,
            n_samples_with_raw_tags=n_raw_samples,
            n_samples_with_canonical_tags=samples_with_tags,
            n_occurrences=int(len(corpus.sample)),
            key_to_canonical=key_to_canonical,
        )

    def _canonical_name(self, raw: str) -> str:
        name = " ".join(raw.split())
        if self.config.rule_aggregation and self.config.lowercase:
            name = name.lower()
        return name

    # ------------------------------------------------------------------ transform

    def _require_vocabulary(self) -> TagVocabulary:
        if self.vocabulary is None:
            raise ConfigError(
                "This TagNormalizer is not fitted. Call `fit(ds)` (or `fit_transform`) first, or build it from a "
                "saved vocabulary with `TagNormalizer.from_vocabulary(TagVocabulary.from_pretrained(path))`."
            )
        return self.vocabulary

    def normalize(self, tags: Sequence[str] | None) -> list[str]:
        """Canonical tags of one row: mapped, deduplicated, in first-seen order."""
        vocab = self._require_vocabulary()
        if not tags:
            return []
        mapping = vocab.raw_to_canonical
        out: dict[str, None] = {}
        for tag in tags:
            if not isinstance(tag, str):
                raise DataError(f"Tags must be strings, got {type(tag).__name__} ({tag!r}).")
            if tag in mapping:
                canonical = mapping[tag]
            else:
                canonical = self._unseen(tag, vocab)
            if canonical is not None:
                out[canonical] = None
        return list(out)

    def _unseen(self, tag: str, vocab: TagVocabulary) -> str | None:
        cfg = self.config
        if cfg.rule_aggregation:
            key = rule_key(tag, cfg.lowercase, cfg.stemmer)
            if key in vocab.key_to_canonical:
                return vocab.key_to_canonical[key]
        if cfg.unknown_tags == "keep":
            return clean_tag(tag, cfg.lowercase) or None
        return None

    def __call__(self, batch: dict[str, list[Any]]) -> dict[str, list[list[str]]]:
        """`Dataset.map(normalizer, batched=True)`: adds `config.output_column`."""
        column = self.config.tags_column
        if column not in batch:
            raise MissingColumnError(column, list(batch))
        return {self.config.output_column: [self.normalize(tags) for tags in batch[column]]}

    def transform(self, data: Dataset | Sequence[Sequence[str] | None], **map_kwargs: Any) -> Any:
        """Add `config.output_column` to a `Dataset` (via `map`), or return canonical tag lists for a list input.

        Args:
            data: a `Dataset` with `config.tags_column`, or a list of tag lists.
            **map_kwargs: passed to `Dataset.map` (e.g. `num_proc`, `desc`).
        """
        self._require_vocabulary()
        try:
            from datasets import Dataset
        except ImportError:  # pragma: no cover
            Dataset = ()  # type: ignore[assignment,misc]
        if isinstance(data, Dataset):
            if self.config.tags_column not in data.column_names:
                raise MissingColumnError(self.config.tags_column, data.column_names)
            map_kwargs.setdefault("desc", "Normalizing tags")
            return data.map(self, batched=True, **map_kwargs)
        return [self.normalize(tags) for tags in data]

    def fit_transform(self, data: Dataset | Sequence[Sequence[str] | None], **map_kwargs: Any) -> Any:
        """`fit(data)` then `transform(data)`."""
        return self.fit(data).transform(data, **map_kwargs)


# ---------------------------------------------------------------------------------------------------------- helpers


def _compact(group: np.ndarray) -> np.ndarray:
    """Renumber group ids to 0..G-1 in order of first appearance (by raw id), keeping -1."""
    out = np.full_like(group, -1)
    valid = group >= 0
    if valid.any():
        _, first, inverse = np.unique(group[valid], return_index=True, return_inverse=True)
        order = np.argsort(np.argsort(first, kind="stable"), kind="stable")
        out[valid] = order[inverse.reshape(-1)]
    return out


def _unique_int(x: np.ndarray) -> np.ndarray:
    """Sorted unique values of an integer array (numpy 2.4's hash-based `np.unique` is ~50x slower here)."""
    if not len(x):
        return x
    s = np.sort(x)
    return s[np.r_[True, s[1:] != s[:-1]]]


def _n_groups(group: np.ndarray) -> int:
    return int(group.max()) + 1 if len(group) and group.max() >= 0 else 0


def _group_counts(corpus: _Corpus, group: np.ndarray) -> np.ndarray:
    """Number of samples holding each group (a sample with two spellings of a group counts once)."""
    n_groups = _n_groups(group)
    if not n_groups or not len(corpus.sample):
        return np.zeros(n_groups, dtype=np.int64)
    g = group[corpus.raw_id]
    keep = g >= 0
    pairs = _unique_int(corpus.sample[keep] * n_groups + g[keep])
    return np.bincount(pairs % n_groups, minlength=n_groups).astype(np.int64)


def _representatives(corpus: _Corpus, group: np.ndarray) -> np.ndarray:
    """Raw id naming each group: its most frequent raw spelling (ties: lexicographically first)."""
    n_groups = _n_groups(group)
    members = np.flatnonzero(group >= 0)
    if not n_groups:
        return np.zeros(0, dtype=np.int64)
    order = np.lexsort((corpus.raw_rank[members], -corpus.raw_counts[members], group[members]))
    sorted_members = members[order]
    sorted_groups = group[sorted_members]
    first = np.flatnonzero(np.r_[True, sorted_groups[1:] != sorted_groups[:-1]])
    return sorted_members[first]


def _associate(
    corpus: _Corpus, group: np.ndarray, min_support: int, min_confidence: float, max_rounds: int
) -> tuple[np.ndarray, dict[str, Any]]:
    """Merge tag a into tag b while some rule a -> b has support >= min_support and confidence >= min_confidence.

    Each tag is merged into its best consequent (highest confidence, then support); a rule only points to a tag
    with strictly higher (support, -id), so chains end and no cycle forms. Rounds repeat on the merged sets.
    """
    g = group.copy()
    merged_total = 0
    rules_total = 0
    rounds = 0
    for rounds in range(1, max_rounds + 1):
        n_groups = _n_groups(g)
        if n_groups < 2:
            break
        occ = g[corpus.raw_id]
        keep = occ >= 0
        pairs = _unique_int(corpus.sample[keep] * n_groups + occ[keep])
        samples, items = pairs // n_groups, pairs % n_groups
        support = np.bincount(items, minlength=n_groups)  # supports over all samples, single-tag ones included
        itemsets = _pair_itemsets(samples, items, support, min_support)
        target = np.arange(n_groups)
        best: dict[int, tuple[float, int, int, int]] = {}
        for itemset, s in itemsets.items():
            if len(itemset) != 2:
                continue
            a, b = itemset
            for x, y in ((a, b), (b, a)):
                conf = s / support[x]
                if conf >= min_confidence and (support[y], -y) > (support[x], -x):
                    rules_total += 1
                    key = (conf, s, int(support[y]), -y)  # best rule: confidence, support, then the bigger tag
                    if x not in best or key > best[x]:
                        best[x] = key
                        target[x] = y
        if not best:
            break
        # Follow pointers to the end of each chain.
        for _ in range(n_groups):
            nxt = target[target]
            if np.array_equal(nxt, target):
                break
            target = nxt
        merged_total += len(best)
        valid = g >= 0
        g[valid] = target[g[valid]]
        g = _compact(g)
    return g, {"rounds": rounds, "rules": rules_total, "merged_tags": merged_total}


def _pair_itemsets(
    samples: np.ndarray, items: np.ndarray, support: np.ndarray, min_support: int
) -> dict[tuple[int, ...], int]:
    """Frequent 1- and 2-itemsets of per-sample tag sets with FP-growth, transactions prepared with numpy.

    Items below `min_support` cannot be in a frequent pair, so they are dropped first; the rest are renumbered by
    decreasing support and sorted within each sample, which is the order FP-growth builds its tree in.
    """
    frequent = support >= min_support
    keep = frequent[items]
    samples, items = samples[keep], items[keep]
    if not len(items):
        return {}
    item_of_rank = np.lexsort((np.arange(len(support)), -support))
    rank_of = np.empty_like(item_of_rank)
    rank_of[item_of_rank] = np.arange(len(item_of_rank))
    ranks = rank_of[items]
    order = np.lexsort((ranks, samples))
    samples, ranks = samples[order], ranks[order]
    bounds = np.flatnonzero(np.r_[True, samples[1:] != samples[:-1], True])
    lengths = np.diff(bounds)
    rank_list = ranks.tolist()
    weighted: Counter[tuple[int, ...]] = Counter(
        tuple(rank_list[b : b + n]) for b, n in zip(bounds[:-1][lengths > 1].tolist(), lengths[lengths > 1].tolist())
    )
    found = _fpgrowth_ranked(weighted, min_support, max_len=2)
    return {tuple(sorted(int(item_of_rank[r]) for r in itemset)): c for itemset, c in found.items()}


def scaled_threshold(value: int, n_samples: int, reference_size: int | None = ALPACA_SIZE, floor: int = 1) -> int:
    """Scale a count threshold set for `reference_size` samples to `n_samples` (see [`TagNormalizerConfig`]).

    Example:
        >>> scaled_threshold(20, 5_000)   # alpha=20 for Alpaca, on 5k samples
        2
    """
    return _scaled(value, n_samples, reference_size, floor)


__all__ = [
    "ALPACA_SIZE",
    "TagNormalizer",
    "TagNormalizerConfig",
    "clean_tag",
    "fpgrowth",
    "rule_key",
    "scaled_threshold",
    "tag_embedder",
]
