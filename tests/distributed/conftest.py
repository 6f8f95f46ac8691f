"""A real two-node Ray cluster on loopback for the whole session (`LoopbackCluster`: each node a `ray start
--block` in its own process group, stopped by signalling that group only, never `ray stop`)."""

from __future__ import annotations

import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)  # ray_fakes: mappers the workers import too (python_path below)

pytest.importorskip("ray", reason="the `ray` extra is not installed (pip install -e '.[ray]')")


@pytest.fixture(scope="session")
def ray_cluster(tmp_path_factory):
    """A head and one more node (2 worker slots each), this process connected as the driver."""
    from hf_prefsel.distributed.loopback import LoopbackCluster

    cluster = LoopbackCluster(slots=2, python_path=[HERE], log_dir=str(tmp_path_factory.mktemp("ray_logs")))
    try:
        cluster.start(nodes=2)
        yield cluster
    finally:
        cluster.stop()
