"""`hf-prefsel tags`: concept tagging, knowledge tree, grounding and information-gain sampling (TAGS)."""

from __future__ import annotations

import argparse
import time

import numpy as np

from .common import (
    add_llm_arguments, add_output_arguments, describe_model, llm_from_args, load_data, print_summary, usage_counts,
)

PAPER = {"title": "From Tags to Trees: Structuring Fine-Grained Knowledge for Controllable Data Selection in LLM Instruction Tuning",
         "arxiv": "2601.13995"}


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    parser = parser or argparse.ArgumentParser(prog="tags_select.py", description=__doc__)
    parser.add_argument("--data", required=True, help="a .jsonl/.csv/.parquet file (or glob), a saved dataset folder, or a Hub id")
    parser.add_argument("--budget", type=float, required=True, help="rows to select (an integer) or a fraction in (0, 1)")
    parser.add_argument("--limit", type=int, default=None, help="use only the first N rows")
    parser.add_argument("--instruction-column", default="instruction")
    parser.add_argument("--input-column", default="input")
    method = parser.add_argument_group("method")
    method.add_argument("--check-rounds", type=int, default=0, help="concept checker rounds after extraction")
    method.add_argument("--tree-ratio", type=float, default=0.1, help="parents per child at each tree level")
    method.add_argument("--llm-names", action="store_true", help="name tree parents with the LLM (default: key terms)")
    method.add_argument("--ground-threshold", type=float, default=0.8, help="cosine needed to ground an unknown concept on a leaf")
    method.add_argument("--quality-column", help="a numeric column used as quality q(x) (default: uniform)")
    method.add_argument("--target-data", "--target", dest="target",
                        help="a target-domain dataset: select to match its leaf distribution (KL-aligned)")
    method.add_argument("--target-limit", type=int, default=None)
    method.add_argument("--mu", type=float, default=1.0, help="weight of the KL term for --target")
    method.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--save-tree", metavar="DIR", help="save the KnowledgeTree artifact to this folder")
    parser.add_argument("--tree-html", metavar="PATH", help="write the tree as a self-contained HTML picture")
    parser.add_argument("--push-tree-to", metavar="REPO", help="push the KnowledgeTree artifact to its own Hub repo")
    add_llm_arguments(parser)
    add_output_arguments(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    from ..hub import Provenance, push_dataset, save_dataset
    from ..tags import (
        AlignedSamplerConfig,
        ConceptTagger,
        GlobalSamplerConfig,
        GroundingConfig,
        KnowledgeTree,
        KnowledgeTreeConfig,
        LLMNamer,
        ground_dataset,
        select_from_dataset,
        tree_information,
    )

    timings: dict[str, float] = {}
    pool = load_data(args.data, limit=args.limit)
    target = load_data(args.target, limit=args.target_limit) if args.target else None
    budget = int(args.budget) if args.budget >= 1 else args.budget
    with llm_from_args(args) as llm:
        tagger = ConceptTagger(llm, instruction_column=args.instruction_column, input_column=args.input_column,
                               check_rounds=args.check_rounds, on_bad_row="record")
        start = time.monotonic()
        pool = pool.map(tagger, batched=True, batch_size=args.batch_size, desc="Concept tagging")
        if target is not None:
            target = target.map(tagger, batched=True, batch_size=args.batch_size, desc="Concept tagging (target)")
        timings["tagging"] = time.monotonic() - start

        start = time.monotonic()
        concepts = [c for row in pool["concepts"] for c in row]
        if not concepts:
            print("No row got a concept; nothing to build a tree from. See the concepts_error column.")
            return 1
        namer = LLMNamer(llm) if args.llm_names else None
        tree = KnowledgeTree.build(concepts, KnowledgeTreeConfig(ratio=args.tree_ratio, seed=args.seed), namer=namer)
        timings["tree"] = time.monotonic() - start
        usage = tagger.client.usage.as_dict()
        model = describe_model(llm)

    start = time.monotonic()
    grounding = GroundingConfig(threshold=args.ground_threshold)
    pool, report = ground_dataset(pool, tree, grounding)
    if target is not None:
        target, _ = ground_dataset(target, tree, grounding)
    config = (AlignedSamplerConfig(budget=budget, mu=args.mu) if target is not None else GlobalSamplerConfig(budget=budget))
    selected, result = select_from_dataset(pool, tree, config, quality=args.quality_column, target=target)
    timings["ground+select"] = time.monotonic() - start
    rng = np.random.default_rng(args.seed)
    random_pick = rng.choice(len(pool), size=len(selected), replace=False)
    random_info = tree_information(tree, pool["concept_leaves"], subset=random_pick)

    failures = sum(bool(e) for e in pool["concepts_error"])
    print(f"\nknowledge tree: {tree.n_leaves} leaves, {tree.n_nodes} nodes, depth {tree.depth}; levels {tree.level_sizes()}")
    for name, leaves, children in tree.top_branches(5, 4):
        print(f"  {name} ({leaves} leaves): {', '.join(children)}")
    print(f"grounding: {report}")
    print(f"selection: {len(selected)} rows, I(S) = {result.information:.2f} (a random pick of the same size: {random_info:.2f})")
    if result.kl_to_target is not None:
        print(f"KL(target || selection) = {result.kl_to_target:.3f}")
    summary = {
        "rows_in": len(pool), "concept_failures": failures, "unique_concepts": tree.n_leaves, "tree_nodes": tree.n_nodes,
        "tree_depth": tree.depth, "grounded_fraction": round(report.grounded_fraction, 4), "selected": len(selected),
        "information": round(result.information, 3), "random_information": round(float(random_info), 3),
        **usage_counts(usage),
    }
    if result.kl_to_target is not None:
        summary["kl_to_target"] = round(result.kl_to_target, 4)
    print_summary(summary, timings, model)

    provenance = Provenance(
        method="TAGS", papers=[PAPER], model=model, source=args.data, selection_budget=args.budget,
        parameters={k: v for k, v in vars(args).items() if k in (
            "check_rounds", "tree_ratio", "llm_names", "ground_threshold", "quality_column", "target", "mu", "seed", "limit")},
        counts={**summary, "rows_out": len(selected)},
    )
    if args.save_tree:
        print(f"tree saved to {tree.save_pretrained(args.save_tree)}")
    if args.tree_html:
        tree.to_html(args.tree_html)
        print(f"tree picture: {args.tree_html}")
    if args.output:
        print(f"wrote {save_dataset(selected, args.output, provenance)}")
    if args.push_to_hub:
        print(f"pushed {push_dataset(selected, args.push_to_hub, provenance, artifacts={'knowledge_tree': tree}, private=args.private or None)}")
    if args.push_tree_to:
        print(f"pushed the tree: {tree.push_to_hub(args.push_tree_to, private=args.private or None)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run(build_parser().parse_args(argv))
