"""`export --format parquet`: the CSV's flat table (`summary.flat_table`) as a Parquet file,
for pandas, polars and DuckDB. pyarrow is optional (`pip install 'hq-sweep[parquet]'`)."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from hq_sweep.errors import InvalidInput
from hq_sweep.results.summary import flat_table


class ParquetUnavailable(InvalidInput):
    """pyarrow is not installed."""


def write_parquet(rows: list[dict[str, Any]], path: Path) -> None:
    """Write the trials; a column whose values mix kinds (a categorical of 1 and "a") is
    written as text, as Parquet holds one type per column."""
    try:
        pa = importlib.import_module("pyarrow")
        pq = importlib.import_module("pyarrow.parquet")
    except ImportError:
        raise ParquetUnavailable("--format parquet needs pyarrow: pip install "
                                 "'hq-sweep[parquet]' (or pip install pyarrow)") from None
    columns, flat = flat_table(rows)
    arrays = {name: _column(pa, [row.get(name) for row in flat]) for name in columns}
    pq.write_table(pa.table(arrays), str(path))


def _column(pa: Any, values: list[Any]) -> Any:
    kinds = {type(v).__name__ for v in values if v is not None}
    if len(kinds) > 1 and kinds != {"int", "float"}:
        values = [None if v is None else str(v) for v in values]
    elif kinds == {"int", "float"}:
        values = [None if v is None else float(v) for v in values]
    return pa.array(values)

