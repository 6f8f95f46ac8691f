"""Pieces of the cluster executor that need no cluster: checkpoint shards, cache merging, splitting limits and budgets."""

from __future__ import annotations

import pytest

from hf_prefsel.distributed.caches import add_replies, read_replies
from hf_prefsel.distributed.checkpoint import ShardStore
from hf_prefsel.distributed.cluster import NodeSlots, check_address, parse_address
from hf_prefsel.distributed.executor import attach_columns, in_flight_total, interleave, split
from hf_prefsel.distributed.ledger import Ledger
from hf_prefsel.errors import ClusterUnavailableError, ConfigError, DataError
from hf_prefsel.llm import free_port
from hf_prefsel.llm.cache import CachedReply, RequestCache


def test_shards_keep_finished_rows_once_in_row_order(tmp_path):
    store = ShardStore(str(tmp_path), "job", 5)
    store.write([3, 4], {"tags": [["d"], ["e"]], "err": ["", ""]})
    store.write([0, 1], {"tags": [["a"], []], "err": ["", "x"]})
    assert store.done_ids() == {0, 1, 3, 4}
    with pytest.raises(DataError, match="1 of 5 rows are not finished"):
        store.table()
    again = ShardStore(str(tmp_path), "job", 5)  # a rerun sees the same rows
    again.write([2, 3], {"tags": [["c"], ["d"]], "err": ["", ""]})  # row 3 written twice counts once
    table = again.table()
    assert table.column_names == ["tags", "err"]
    assert table.to_pydict() == {"tags": [["a"], [], ["c"], ["d"], ["e"]], "err": ["", "x", "", "", ""]}
    with pytest.raises(DataError, match="another dataset"):
        ShardStore(str(tmp_path), "job", 6)


def test_replies_are_added_without_overwriting(tmp_path):
    node, driver = str(tmp_path / "node.sqlite"), str(tmp_path / "driver.sqlite")
    cache = RequestCache(node)
    cache.put("k1", CachedReply("one", 1, 2))
    cache.put("k2", CachedReply("two", 3, 4))
    cache.close()
    mine = RequestCache(driver)
    mine.put("k1", CachedReply("kept", 9, 9))
    mine.close()
    assert add_replies(driver, read_replies(node)) == 1
    merged = RequestCache(driver)
    assert merged.get("k1") == CachedReply("kept", 9, 9) and merged.get("k2") == CachedReply("two", 3, 4)
    assert read_replies(str(tmp_path / "absent.sqlite")) == []


def test_limits_split_over_workers_and_nodes_take_turns():
    assert split(10, 4) == [3, 3, 2, 2] and sum(split(7, 7)) == 7
    a, b = NodeSlots("a", "h1", 2), NodeSlots("b", "h2", 1)
    assert [n.node_id for n in interleave([a, b])] == ["a", "b", "a"]


def test_unset_max_concurrency_uses_what_the_replicas_report(fault_server):
    one, two = fault_server(), fault_server()  # llama-cpp-python style: one slot each, a few queued
    assert in_flight_total(one.config(None, max_concurrency=6)) == 6
    assert in_flight_total(one.config(None, max_concurrency=None, endpoints=[one.url, two.url])) == 8
    tgi = fault_server(tgi=True)  # /info without max_concurrent_requests: nothing reported
    assert in_flight_total(tgi.config(None, max_concurrency=None)) is None


def test_ledger_never_grants_more_than_the_budget():
    ledger = Ledger(max_calls=25, max_total_tokens=None)
    ledger.set_workers(3)
    granted = [ledger.lease(8, 10)[0] for _ in range(40)]
    assert sum(granted) == 25 and granted[-1] == 0
    assert max(granted) <= 8 and granted[-2] == 0  # small leases near the end
    assert ledger.totals() == {"calls_granted": 25, "tokens": 400}


def test_addresses_are_checked_before_ray_is_asked():
    assert parse_address("10.0.0.5:6379") == ("10.0.0.5", 6379)
    assert parse_address("ray://head:10001") == ("head", 10001)
    with pytest.raises(ConfigError, match="not host:port"):
        parse_address("head")
    with pytest.raises(ClusterUnavailableError, match="ray start --head"):
        check_address(f"127.0.0.1:{free_port()}")


def test_new_columns_replace_same_named_ones_in_place():
    import datasets
    import pyarrow as pa

    ds = datasets.Dataset.from_dict({"a": [1, 2, 3], "b": ["x", "y", "z"]}).select([2, 0, 1])
    out = attach_columns(ds, pa.table({"b": ["B2", "B0", "B1"], "c": [True, False, True]}))
    assert out.column_names == ["a", "b", "c"]
    assert out.to_list() == [{"a": 3, "b": "B2", "c": True}, {"a": 1, "b": "B0", "c": False}, {"a": 2, "b": "B1", "c": True}]


def test_loopback_endpoints_are_refused_when_workers_span_machines(fault_server):
    from hf_prefsel.distributed.executor import check_reachable

    llm = fault_server().config(None)  # http://127.0.0.1:PORT
    check_reachable(llm, [NodeSlots("a", "10.0.0.1", 1), NodeSlots("b", "10.0.0.1", 1)])  # one machine: fine
    with pytest.raises(ConfigError, match="loopback address"):
        check_reachable(llm, [NodeSlots("a", "10.0.0.1", 1), NodeSlots("b", "10.0.0.2", 1)])
