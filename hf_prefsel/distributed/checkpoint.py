"""Finished rows of a cluster run, kept on the driver's disk by row id, so a rerun after a crash skips them.

One Arrow file per finished batch (`ROW_ID` plus the new columns), written to a temporary name and renamed,
so a file is either complete or absent: a driver killed mid-write leaves no half shard, and a rerun reads the
ids that are done and sends only the others. The folder is named after the job (the mapper's configuration
and the dataset's fingerprint), so a different job never resumes from it.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import shutil
from typing import Any

import numpy as np
import pyarrow as pa

from ..errors import DataError

ROW_ID = "__hf_prefsel_row__"


def job_key(dataset: Any, fn: Any, batch_size: int) -> str:
    """A name for (mapper configuration, dataset content): equal only for the same job."""
    from datasets.fingerprint import Hasher

    parts = [type(fn).__module__, type(fn).__qualname__, Hasher.hash(fn), getattr(dataset, "_fingerprint", None) or Hasher.hash(dataset),
             str(len(dataset)), str(batch_size)]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:20]


class ShardStore:
    """The finished rows of one job under `root/<job>`.

    Args:
        root (`str`): folder holding job folders.
        job (`str`): the job's key (`job_key`).
        n_rows (`int`): rows in the job's dataset; ids are positions `0 .. n_rows - 1`.
    """

    def __init__(self, root: str, job: str, n_rows: int):
        self.path = os.path.join(os.path.expanduser(root), job)
        self.n_rows = n_rows
        os.makedirs(self.path, exist_ok=True)
        manifest = os.path.join(self.path, "manifest.json")
        if os.path.exists(manifest):
            with open(manifest) as fh:
                if json.load(fh).get("n_rows") != n_rows:
                    raise DataError(f"The checkpoint in {self.path} was written for another dataset; delete the folder to start over.")
        else:
            self._write_atomic(manifest, json.dumps({"job": job, "n_rows": n_rows}).encode())
        self._next = len(self._shards())

    def _shards(self) -> list[str]:
        return sorted(glob.glob(os.path.join(self.path, "shard-*.arrow")))

    def _write_atomic(self, path: str, data: bytes) -> None:
        tmp = f"{path}.tmp-{os.getpid()}"
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)

    def done_ids(self) -> set[int]:
        """Row ids already finished by this or an earlier run."""
        done: set[int] = set()
        for path in self._shards():
            with pa.memory_map(path) as source:
                done.update(pa.ipc.open_file(source).read_all().column(ROW_ID).to_pylist())
        return done

    def write(self, ids: list[int], columns: dict[str, list[Any]]) -> None:
        """Keep one finished batch."""
        table = pa.table({ROW_ID: pa.array(ids, pa.int64()), **columns})
        sink = pa.BufferOutputStream()
        with pa.ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table)
        self._write_atomic(os.path.join(self.path, f"shard-{self._next:08d}.arrow"), sink.getvalue().to_pybytes())
        self._next += 1

    def table(self) -> pa.Table:
        """The new columns of every row, in row order, each row once.

        Raises:
            `DataError`: rows are missing (the run did not finish).
        """
        tables = []
        for path in self._shards():
            with pa.memory_map(path) as source:
                tables.append(pa.ipc.open_file(source).read_all())
        if not tables:
            raise DataError(f"No finished rows in {self.path}.")
        table = pa.concat_tables(tables, promote_options="permissive")
        ids = table.column(ROW_ID).to_numpy()
        unique, first = np.unique(ids, return_index=True)  # sorted ids; a row written twice counts once
        if len(unique) != self.n_rows or (self.n_rows and (unique[0] != 0 or unique[-1] != self.n_rows - 1)):
            raise DataError(f"{self.n_rows - len(unique)} of {self.n_rows} rows are not finished in {self.path}.")
        return table.take(pa.array(first)).drop_columns([ROW_ID])

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


__all__ = ["ROW_ID", "ShardStore", "job_key"]
