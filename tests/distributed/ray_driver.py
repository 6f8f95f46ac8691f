"""A driver process for the crash test: tags `n` rows on the cluster, prints the run report as JSON, saves the result.

    python ray_driver.py ADDRESS ENDPOINT_URL N CHECKPOINT_DIR CACHE_PATH NODE_CACHE_DIR OUT_DIR
"""

from __future__ import annotations

import dataclasses
import json
import sys

from ray_fakes import instructions

from hf_prefsel.distributed import RayExecutor
from hf_prefsel.llm import LLMConfig
from hf_prefsel.tacos import OpenTagger


def main() -> None:
    address, url, n, checkpoint_dir, cache_path, node_cache_dir, out_dir = sys.argv[1:8]
    llm = LLMConfig(endpoints=[url], route="completion", cache_path=cache_path, max_concurrency=4, max_retries=1, backoff=0.01)
    with RayExecutor(address, checkpoint_dir=checkpoint_dir, node_cache_dir=node_cache_dir, progress=False) as executor:
        out, usage = executor.map(instructions(int(n)), OpenTagger(llm), batch_size=8, desc="tagging")
        out.save_to_disk(out_dir)
        print(json.dumps({"report": dataclasses.asdict(executor.last_run), "usage": usage}), flush=True)


if __name__ == "__main__":
    main()
