"""Scale-out: run our per-row model stages (taggers, judges, generators) on a Ray cluster.

`RayExecutor` implements `hf_prefsel.llm.executor.Executor`, so every pipeline's `run(..., executor=...)` sends its
per-row stages to the cluster while global stages stay in this process; `map_on_ray` does it for one mapper.
Needs the `ray` extra: `pip install 'hf_prefsel[ray]'`, on this machine and on every node.
"""

from .cluster import check_address, connect
from .executor import RayExecutor, RunReport, map_on_ray

__all__ = ["RayExecutor", "RunReport", "check_address", "connect", "map_on_ray"]
