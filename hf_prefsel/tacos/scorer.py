"""Comparative (pairwise, within-cluster) quality scoring, TACOS stage D.

Two topically related samples judged side by side get scores that are comparable with each
other, which a judge scoring one sample at a time (too many top marks) does not give.

Beyond the paper: several passes with different pairings and aggregation (mean or
Bradley–Terry), order swapping with a position-bias report, and a one-sample baseline.
"""

from __future__ import annotations

import logging
import math
import random
from dataclasses import dataclass, field
from typing import Any, Literal, Sequence

import numpy as np
from pydantic import BaseModel, Field

from ..errors import ConfigError, MissingColumnError
from ..llm import FewShotPrompt, LLMConfig, get_client
from ..llm.prob_scores import LogprobMeter, opened_source
from ..llm.text import instruction_text, response_text
from .cluster import cluster_members, column_values
from .pair_judge import PairJudge, pair_text, verdicts

logger = logging.getLogger(__name__)

JUDGE_BATCH_SIZE = 64  # planned pairs per executor batch (a Ray worker holds a few such batches at once)

DIMENSIONS = ("completeness", "clarity", "accuracy", "relevance", "explainability", "practicality", "safety")


class PairJudgement(BaseModel):
    """The judge's reply for two samples: a short comparative analysis, then one 1-100 score each."""

    analysis: str
    score_1: int = Field(ge=1, le=100)
    score_2: int = Field(ge=1, le=100)


class SingleJudgement(BaseModel):
    """The baseline judge's reply for one sample."""

    analysis: str
    score: int = Field(ge=1, le=100)


_RUBRIC = (
    "Judge the RESPONSE of each instruction-tuning sample on completeness, clarity, accuracy, relevance, "
    "explainability, practicality and safety, equally weighted. Be strict. Judge each response on its own "
    "merits for its own instruction; ignore length and the order the samples are shown in. "
)

# Written by us. Demonstrations alternate which sample is better, so the examples teach no position preference.
PAIRWISE_PROMPT = FewShotPrompt(
    system=(
        "You screen training data for a chat assistant. You see two samples on related topics. " + _RUBRIC
        + "Reply with JSON: a one-sentence comparative analysis, then a score from 1 to 100 for each sample."
    ),
    examples=(
        (
            "[Sample 1]\nInstruction: How many legs does a spider have?\nResponse: Spiders have eight legs, "
            "arranged in four pairs attached to the cephalothorax.\n\n[Sample 2]\nInstruction: How many legs does "
            "an ant have?\nResponse: Ants are insects.",
            '{"analysis": "Sample 1 answers exactly and adds a useful detail; sample 2 never gives the number.", '
            '"score_1": 88, "score_2": 22}',
        ),
        (
            "[Sample 1]\nInstruction: Give a synonym for happy.\nResponse: sad\n\n[Sample 2]\nInstruction: Give a "
            "synonym for fast.\nResponse: Quick. Other options are rapid and swift.",
            '{"analysis": "Sample 1 gives an antonym, which is wrong; sample 2 is correct and offers alternatives.", '
            '"score_1": 8, "score_2": 90}',
        ),
        (
            "[Sample 1]\nInstruction: Convert 5 km to miles.\nResponse: 5 km is about 3.11 miles (1 km = 0.621 "
            "miles).\n\n[Sample 2]\nInstruction: Convert 10 kg to pounds.\nResponse: 10 kg is about 22 pounds.",
            '{"analysis": "Both are correct; sample 1 also shows the conversion factor, so it explains more.", '
            '"score_1": 84, "score_2": 74}',
        ),
    ),
)

SINGLE_PROMPT = FewShotPrompt(
    system="You screen training data for a chat assistant. " + _RUBRIC
    + "Reply with JSON: a one-sentence analysis, then a score from 1 to 100.",
    examples=(
        (
            "Instruction: How many legs does an ant have?\nResponse: Ants are insects.",
            '{"analysis": "It never gives the number that was asked for.", "score": 22}',
        ),
        (
            "Instruction: Convert 5 km to miles.\nResponse: 5 km is about 3.11 miles (1 km = 0.621 miles).",
            '{"analysis": "Correct, and it shows the conversion factor.", "score": 86}',
        ),
    ),
)


@dataclass
class ComparativeScorerConfig:
    """How samples are paired, judged and aggregated.

    Args:
        instruction_column (`str`, defaults to `"instruction"`), input_column (`str`, *optional*, defaults to `"input"`),
        response_column (`str`, defaults to `"output"`): the sample's text.
        cluster_column (`str`, defaults to `"cluster_ids"`): label sets from `TagClusterer` (overlapping clusters).
        score_column (`str`, defaults to `"score"`): where the final score goes (NaN = not scored).
        passes (`int`, defaults to 1): comparisons per sample. Pass 0 pairs neighbours in stored order
            within each cluster (the released code); later passes pair shuffled members (seeded).
        swap (`bool`, defaults to `False`): also judge every pair in the other order and average; the
            share of pairs whose winner flips is reported as the position-bias rate. Doubles the calls.
        aggregate (`"mean" | "bradley_terry"`, defaults to `"mean"`): a sample's score is the mean of its
            judge scores, or a Bradley–Terry strength fitted on all its pairwise outcomes, mapped to 1-100.
        pair_leftovers (`bool`, defaults to `True`): samples left alone in every cluster (odd counts) are
            paired with each other so they get a score; the released code dropped them (set `False`).
        max_chars (`int`, defaults to 1200): each instruction and response is cut to this many characters.
        max_tokens (`int`, defaults to 128): reply cap. A verdict is a sentence of analysis and two numbers
            (~50 tokens); a judge rambling past the cap is cut and repaired instead of paid for up to the
            endpoint's default.
        seed (`int`, defaults to 0).
        verdict (`"sampled" | "probability"`, defaults to `"sampled"`): `probability` reads P(sample 1 is better)
            from the judge's token probabilities (`hf_prefsel.tacos.prob_verdict`; with `swap=True` the two orders
            average in probability space, so a pure position preference cancels exactly, and the report's
            `position_consistency` says how often each order alone picked the same winner). `SingletonScorer` reads
            the expected 1-9 digit score instead, mapped onto 1-100. It is judged in this process (exact
            log-probabilities for the embedded model; servers must return `logprobs`, otherwise sampled verdicts are
            used) and ignores `prompt` and `executor`.
    """

    instruction_column: str = "instruction"
    input_column: str | None = "input"
    response_column: str = "output"
    cluster_column: str = "cluster_ids"
    score_column: str = "score"
    passes: int = 1
    swap: bool = False
    aggregate: Literal["mean", "bradley_terry"] = "mean"
    pair_leftovers: bool = True
    max_chars: int = 1200
    max_tokens: int = 128
    seed: int = 0
    verdict: Literal["sampled", "probability", "likelihood"] = "sampled"

    def __post_init__(self) -> None:
        if self.verdict not in ("sampled", "probability"):
            raise ConfigError(f"verdict must be 'sampled' or 'probability', got {self.verdict!r}.")
        if self.passes < 1:
            raise ConfigError(f"passes must be >= 1, got {self.passes}.")
        if self.aggregate not in ("mean", "bradley_terry"):
            raise ConfigError(f"aggregate must be 'mean' or 'bradley_terry', got {self.aggregate!r}.")


@dataclass
class ScoringReport:
    """What a scoring run did and cost.

    `position_bias_rate` is the share of pairs judged in both orders whose per-order winner flips with the order,
    `position_consistency` (= 1 - that) the share whose winner agrees; both `None` without `swap=True`, and for the
    one-sample baseline, which sees one sample at a time (no position arises there). With probability verdicts they
    describe the judge, not the result: the averaged verdict itself is order-free (a pure position preference
    cancels exactly), so a consistency below 1 costs nothing but says how much the judge leaned on position.
    `verdict` says which verdicts were used in the end (`"sampled"` also when probabilities were asked for but
    the server returned no log-probabilities; `"likelihood"`: `IFDScorer` scored the rows, no pair was judged).
    """

    pairs: int = 0
    calls_planned: int = 0
    judged: int = 0
    failed: int = 0
    scored_samples: int = 0
    unscored_samples: int = 0
    position_bias_rate: float | None = None
    position_consistency: float | None = None
    verdict: Literal["sampled", "probability", "likelihood"] = "sampled"
    usage: dict[str, int] = field(default_factory=dict)

    def __str__(self) -> str:
        bias = "n/a" if self.position_bias_rate is None else f"{self.position_bias_rate:.1%}"
        consistency = "n/a" if self.position_consistency is None else f"{self.position_consistency:.1%}"
        return (
            f"{self.pairs} pairs, {self.calls_planned} judge calls planned, {self.judged} judged, {self.failed} failed; "
            f"{self.scored_samples} samples scored, {self.unscored_samples} unscored; {self.verdict} verdicts; "
            f"position-bias rate {bias}, position consistency {consistency}"
        )


def plan_pairs(cluster_ids: Sequence[Sequence[int] | None], passes: int = 1, *, seed: int = 0, pair_leftovers: bool = True) -> list[tuple[int, int]]:
    """Pairs of row indices to judge: at most one pair per sample per pass, both members sharing a cluster.

    Clusters are visited smallest first, so samples of rare topics find a partner before the large
    clusters take everyone. Cost: at most `passes * n / 2` pairs.
    """
    members = cluster_members(list(cluster_ids))
    order = sorted(members, key=lambda c: (len(members[c]), c))
    rng = random.Random(seed)
    pairs: list[tuple[int, int]] = []
    seen: set[tuple[int, int]] = set()
    for p in range(passes):
        paired: set[int] = set()
        for c in order:
            free = [i for i in members[c] if i not in paired]
            if p > 0:
                rng.shuffle(free)
            for a, b in zip(free[0::2], free[1::2]):
                key = (min(a, b), max(a, b))
                if key in seen:
                    continue
                seen.add(key)
                pairs.append((a, b))
                paired.update(key)
        if pair_leftovers:
            labelled = sorted({i for c in members for i in members[c]} - paired)
            if p > 0:
                rng.shuffle(labelled)
            for a, b in zip(labelled[0::2], labelled[1::2]):
                key = (min(a, b), max(a, b))
                if key not in seen:
                    seen.add(key)
                    pairs.append((a, b))
    return pairs


def bradley_terry(n: int, outcomes: Sequence[tuple[int, int, float]], *, iterations: int = 200, prior: float = 0.5) -> np.ndarray:
    """Bradley–Terry log-strengths from `(i, j, s)` outcomes, `s` = 1 if i won, 0 if j won, 0.5 for a tie.

    Minorization–maximization updates (Hunter 2004) with a small prior game against a virtual
    average player, so samples that won or lost every comparison still get finite strengths.
    Written here because it is twenty lines of numpy; the PyPI packages for it add more than they save.
    """
    if not outcomes:
        return np.zeros(n)
    i = np.array([o[0] for o in outcomes])
    j = np.array([o[1] for o in outcomes])
    s = np.array([o[2] for o in outcomes], dtype=float)
    wins = np.bincount(i, weights=s, minlength=n) + np.bincount(j, weights=1 - s, minlength=n) + prior
    games = np.bincount(i, minlength=n) + np.bincount(j, minlength=n)
    strength = np.ones(n)
    for _ in range(iterations):
        inv = 1.0 / (strength[i] + strength[j])
        denom = np.bincount(i, weights=inv, minlength=n) + np.bincount(j, weights=inv, minlength=n) + 2 * prior / (strength + 1.0)
        new = wins / denom
        new /= np.exp(np.mean(np.log(new)))
        if np.max(np.abs(new - strength)) < 1e-9:
            strength = new
            break
        strength = new
    logs = np.log(strength)
    logs[games == 0] = np.nan
    return logs


class _JudgeBase:
    def __init__(self, llm: LLMConfig | None, config: ComparativeScorerConfig | None):
        self.llm = llm or LLMConfig()
        self.config = config or ComparativeScorerConfig()
        self.report = ScoringReport()

    def _sample_text(self, row: dict[str, Any]) -> tuple[str, str]:
        cfg = self.config
        instruction = instruction_text(row, instruction_column=cfg.instruction_column, input_column=cfg.input_column,
                                       max_chars=cfg.max_chars, required=False)
        return instruction, response_text(row, cfg.response_column, max_chars=cfg.max_chars)

    def _rows(self, ds: Any) -> list[dict[str, Any]]:
        cfg = self.config
        needed = [cfg.instruction_column, cfg.response_column]
        for option, name in zip(("instruction_column", "response_column"), needed):
            if name not in ds.column_names:
                raise MissingColumnError(name, ds.column_names, option=option)
        columns = needed + ([cfg.input_column] if cfg.input_column and cfg.input_column in ds.column_names else [])
        values = {c: column_values(ds, c) for c in columns}
        return [{c: values[c][k] for c in columns} for k in range(len(ds))]

    def _announce(self, calls: int) -> None:
        """Log the planned calls (a library does not print); a budget too small for them is a warning."""
        budget = self.llm.max_calls
        if budget is not None and budget < calls:
            logger.warning("%s: %d judge calls planned (budget: %d calls; judgements beyond it are recorded as failures)",
                           type(self).__name__, calls, budget)
        else:
            logger.info("%s: %d judge calls planned", type(self).__name__, calls)


class ComparativeScorer(_JudgeBase):
    """Score samples by judging pairs from the same tag cluster on a 1-100 scale.

    Adds `score` (float, NaN when the sample could not be scored), `n_comparisons` and
    `score_error`. `report` holds the run's counts, the position-bias rate and the position consistency (with
    `swap=True`).

    Args:
        llm (`LLMConfig`, *optional*): the judge; defaults to the embedded Gemma.
        config (`ComparativeScorerConfig`, *optional*).
        prompt (`FewShotPrompt`, *optional*): replaces the built-in pairwise prompt.

    Example:
        >>> scorer = ComparativeScorer(servers.config(), ComparativeScorerConfig(swap=True))
        >>> scored = scorer.score(clustered)
        >>> print(scorer.report)
    """

    def __init__(self, llm: LLMConfig | None = None, config: ComparativeScorerConfig | None = None, prompt: FewShotPrompt = PAIRWISE_PROMPT):
        super().__init__(llm, config)
        self.prompt = prompt

    def plan(self, ds: Any) -> list[tuple[int, int]]:
        """The pairs `score` would judge (no call is made)."""
        cfg = self.config
        if cfg.cluster_column not in ds.column_names:
            raise MissingColumnError(cfg.cluster_column, ds.column_names, option="cluster_column")
        return plan_pairs(column_values(ds, cfg.cluster_column), cfg.passes, seed=cfg.seed, pair_leftovers=cfg.pair_leftovers)

    def _message(self, a: tuple[str, str], b: tuple[str, str]) -> list[dict[str, str]]:
        return self.prompt.messages(pair_text(a, b))

    def score(self, ds: Any, *, progress: bool = True, executor: Any = None) -> Any:
        """Judge the planned pairs and return `ds` with the score columns added.

        Args:
            ds (`datasets.Dataset`): clustered samples.
            progress (`bool`, defaults to `True`): a progress bar.
            executor (`Executor`, *optional*): judge the pairs there (e.g. `hf_prefsel.distributed.RayExecutor`);
                by default every pair is sent from this process at once. Pairs are planned and verdicts aggregated
                here either way.
        """
        cfg = self.config
        rows = self._rows(ds)
        pairs = self.plan(ds)
        texts = [self._sample_text(r) for r in rows]
        orders = [(a, b) for a, b in pairs] + ([(b, a) for a, b in pairs] if cfg.swap else [])
        self._announce(len(orders))
        client = get_client(self.llm)
        before = client.usage.as_dict()
        spent: dict[str, int] | None = None
        results = None
        if cfg.verdict == "probability":
            from .prob_verdict import probability_verdicts  # it reads this module's prompts

            results, spent = _probability_run(self.llm, probability_verdicts, [pair_text(texts[a], texts[b]) for a, b in orders])
        if results is None and executor is None:
            results = client.run_structured(
                [self._message(texts[a], texts[b]) for a, b in orders], PairJudgement, progress=progress,
                desc="Comparative scoring", overrides={"max_tokens": cfg.max_tokens},
            )
        elif results is None:
            from datasets import Dataset

            planned = Dataset.from_dict({"pair_text": [pair_text(texts[a], texts[b]) for a, b in orders]})
            judge = PairJudge(self.llm, prompt=self.prompt, max_tokens=cfg.max_tokens)
            judged, spent = executor.map(planned, judge, batch_size=JUDGE_BATCH_SIZE, desc="Comparative scoring")
            results = verdicts(judged)
        n = len(rows)
        per_sample: list[list[float]] = [[] for _ in range(n)]
        errors: list[str | None] = [None] * n
        outcomes: list[tuple[int, int, float]] = []
        flips = both = 0
        for k, (a, b) in enumerate(pairs):
            first = results[k]
            second = results[k + len(pairs)] if cfg.swap else None
            got: list[tuple[float, float]] = []
            if first.ok:
                got.append((first.value.score_1, first.value.score_2))
            if second is not None and second.ok:
                got.append((second.value.score_2, second.value.score_1))  # swapped back to (a, b)
            if first.ok and second is not None and second.ok:
                both += 1
                flips += _winner(*got[0]) != _winner(*got[1])
            if not got:
                reason = (first.error or (second.error if second else None)) or "judge failed"
                errors[a] = errors[a] or reason
                errors[b] = errors[b] or reason
                continue
            sa = float(np.mean([g[0] for g in got]))
            sb = float(np.mean([g[1] for g in got]))
            per_sample[a].append(sa)
            per_sample[b].append(sb)
            outcomes.append((a, b, 1.0 if sa > sb else 0.0 if sa < sb else 0.5))
        if cfg.aggregate == "bradley_terry":
            logs = bradley_terry(n, outcomes)
            scores = _to_scale(logs)
        else:
            scores = np.array([np.mean(s) if s else np.nan for s in per_sample])
        counts = [len(s) for s in per_sample]
        after = client.usage.as_dict()
        self.report = ScoringReport(
            pairs=len(pairs), calls_planned=len(orders), judged=sum(r.ok for r in results),
            failed=sum(not r.ok for r in results), scored_samples=int(np.sum(~np.isnan(scores))),
            unscored_samples=int(np.sum(np.isnan(scores))), position_bias_rate=(flips / both) if both else None,
            position_consistency=(1.0 - flips / both) if both else None,
            verdict="sampled" if spent is None else "probability",
            usage={k: after[k] - before[k] for k in after} if spent is None else spent,
        )
        paired = {i for pair in pairs for i in pair}
        for i in range(n):
            if counts[i]:
                errors[i] = None  # scored by at least one comparison
            elif i not in paired:
                errors[i] = "not paired: no other sample shares its clusters"
        out = _replace_column(ds, cfg.score_column, [float(x) for x in scores])
        out = _replace_column(out, "n_comparisons", counts)
        return _replace_column(out, "score_error", errors)


class SingletonScorer(_JudgeBase):
    """The baseline: each sample judged alone on the same 1-100 rubric (one call per sample).

    With `ComparativeScorerConfig(verdict="probability")` the judge answers with a digit from 1 to 9 and the score
    is the expected digit under the digits' probabilities, mapped onto 1-100 (G-Eval; `prob_verdict.score_verdicts`,
    which ignores `prompt`); a server without log-probabilities gets sampled scores. The judge sees one sample at a
    time, so position does not arise: the report's position fields stay `None`.
    """

    def __init__(self, llm: LLMConfig | None = None, config: ComparativeScorerConfig | None = None, prompt: FewShotPrompt = SINGLE_PROMPT):
        super().__init__(llm, config)
        self.prompt = prompt

    def score(self, ds: Any, *, progress: bool = True) -> Any:
        rows = self._rows(ds)
        self._announce(len(rows))
        client = get_client(self.llm)
        before = client.usage.as_dict()
        queries = [f"Instruction: {t[0]}\nResponse: {t[1]}" for t in map(self._sample_text, rows)]
        results, spent = None, None
        if self.config.verdict == "probability":
            from .prob_verdict import score_verdicts  # it reads this module's prompts

            results, spent = _probability_run(self.llm, score_verdicts, queries)
        if results is None:
            results = client.run_structured([self.prompt.messages(q) for q in queries], SingleJudgement, progress=progress,
                                            desc="Singleton scoring", overrides={"max_tokens": self.config.max_tokens})
        scores = [float(r.value.score) if r.ok else math.nan for r in results]
        after = client.usage.as_dict()
        self.report = ScoringReport(
            pairs=0, calls_planned=len(rows), judged=sum(r.ok for r in results), failed=sum(not r.ok for r in results),
            scored_samples=sum(not math.isnan(s) for s in scores), unscored_samples=sum(math.isnan(s) for s in scores),
            verdict="sampled" if spent is None else "probability",
            usage={k: after[k] - before[k] for k in after} if spent is None else spent,
        )
        out = _replace_column(ds, self.config.score_column, scores)
        out = _replace_column(out, "n_comparisons", [1 if r.ok else 0 for r in results])
        return _replace_column(out, "score_error", [r.error for r in results])


def _probability_run(llm: LLMConfig, verdicts_of: Any, texts: list[str]) -> tuple[list[Any] | None, dict[str, int] | None]:
    """`verdicts_of(llm, texts, source=...)` and the log-probability calls and tokens it spent; `(None, None)` when
    the judge gives no log-probabilities (the caller samples instead)."""
    with opened_source(llm) as source:
        meter = LogprobMeter(source)
        results = verdicts_of(llm, texts, source=source)
        return (None, None) if results is None else (results, meter.delta())


def _winner(s1: float, s2: float) -> int:
    return (s1 > s2) - (s1 < s2)


def _to_scale(logs: np.ndarray) -> np.ndarray:
    """Map BT log-strengths to 1-100 (a logistic of the log-strength) so columns read like judge scores."""
    return 1.0 + 99.0 / (1.0 + np.exp(-logs))


def _replace_column(ds: Any, name: str, values: list[Any]) -> Any:
    if name in ds.column_names:
        ds = ds.remove_columns(name)
    return ds.add_column(name, values)


__all__ = [
    "ComparativeScorer",
    "ComparativeScorerConfig",
    "PAIRWISE_PROMPT",
    "PairJudgement",
    "SINGLE_PROMPT",
    "ScoringReport",
    "SingleJudgement",
    "SingletonScorer",
    "bradley_terry",
    "plan_pairs",
]
