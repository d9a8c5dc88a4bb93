"""A sweep's rows as a table to lay out: each axis column's distinct values, the metric columns,
and the cells of the grid of any two axis columns under filters (a column fixed to one value or
averaged). Pure data, no widget: the SweepExplorer (``widgets/sweep_explorer.py``) shows it.

>>> from p2p_widgets.evaluate.table import read_sweep
>>> table = read_sweep("runs/pocket")                       # a sweep folder, or load_sweep's rows
>>> table.grid("p.cross", "seed", {"method": "p2p"})["cells"][0]["values"]
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import P2PError
from .figures import NOT_METRICS, setting_label
from .metric_registry import ALL_METRIC_NAMES, TIMING

MEAN = "mean"  # a filter value: average over the column instead of fixing it
AXES = ("method", "seed", "edit_type_name", "case_id", "inversion")  # besides the p.<name> columns
LABELS = {"edit_type_name": "edit type", "case_id": "case"}
REQUIRED = ("row_id", "case_id", "method", "seed", "setting", "image", "spec", "status")


def value_key(value: Any) -> str:
    """A column value's identity: 0.4 and 0.40 are one value, 1 and "1" are two (as in JSON)."""
    kind = type(value)
    if kind is str:  # the common cases without json.dumps: a table has a key per row and column
        return "s:" + value
    if kind is int:
        return repr(value)
    if kind is float:
        return "NaN" if value != value else repr(value)
    return json.dumps(value, sort_keys=True, default=str)


def value_label(value: Any) -> str:
    """How a column value reads in the widget."""
    if value is None:
        return "none"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, default=str)


def _order(value: Any) -> tuple:
    """Sort numbers by value before everything else, then the rest by text."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isnan(value):
        return (0, float(value), "")
    return (1, 0.0, value_key(value))


def as_float(value: Any) -> float:
    """A metric cell as a float; empty, missing or unreadable cells are NaN."""
    if value is None or value == "" or isinstance(value, bool):
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def column_label(column: str) -> str:
    if column.startswith("p."):
        return column[2:]
    return LABELS.get(column, column)


def _metric_order(names: list[str]) -> list[str]:
    """The registry's metrics in its order, then other numeric columns by name, the timing last."""
    first = [m for m in ALL_METRIC_NAMES if m in names]
    rest = sorted(m for m in names if m not in first and m != TIMING)
    return list(dict.fromkeys(first + rest + ([TIMING] if TIMING in names else [])))


def check_rows(rows: Any) -> list[dict]:
    """The rows as a list of dicts, or a P2PError naming the first row or column that is wrong."""
    if isinstance(rows, (str, bytes, dict)) or not isinstance(rows, Sequence):
        raise P2PError(f"rows must be a list of dicts (load_sweep's output), got {type(rows).__name__}")
    if not rows:
        raise P2PError("the sweep has no rows yet")
    out = []
    for k, row in enumerate(rows):
        if not isinstance(row, dict):
            raise P2PError(f"row {k} must be a dict, got {type(row).__name__}")
        missing = [c for c in REQUIRED if c not in row]
        if missing:
            raise P2PError(f"row {k} ({row.get('row_id', '?')}) has no column {', '.join(map(repr, missing))}")
        if row["status"] not in ("ok", "error"):
            raise P2PError(f"row {k}: status must be 'ok' or 'error', got {row['status']!r}")
        if all(type(v) in _PLAIN_TYPES for v in row.values()):
            out.append(row)  # never changed here: no copy
        else:
            out.append({c: _plain_cell(v) for c, v in row.items()})
    return out


_PLAIN_TYPES = frozenset((str, int, float, bool, type(None), list, dict))


def _plain_cell(value: Any) -> Any:
    """numpy scalars (a parquet or pandas table's cells) as Python values: they compare, sort and
    travel as JSON like the values of rows read from JSON."""
    if type(value).__module__ == "numpy" and hasattr(value, "item"):
        return value.item()
    return value


class SweepTable:
    """The rows of one sweep, their axis columns (each column's distinct values, sorted) and
    metric columns, and the grid of any two axis columns. Pure data: the widget's source of truth."""

    def __init__(self, rows: Any, root: Path | None = None):
        self.rows = check_rows(rows)
        self.root = root
        columns = list(dict.fromkeys(c for row in self.rows for c in row))
        params = sorted(c for c in columns if c.startswith("p."))
        axis_columns = [*params, *[c for c in AXES if c in columns]]
        self._keys = [{c: value_key(row.get(c)) for c in axis_columns} for row in self.rows]
        self.axes: dict[str, list] = {}
        for column in axis_columns:
            distinct: dict[str, Any] = {}
            for row, keys in zip(self.rows, self._keys):
                distinct.setdefault(keys[column], row.get(column))
            self.axes[column] = sorted(distinct.values(), key=_order)
        candidates = [c for c in columns if c not in NOT_METRICS and not c.startswith("p.")]
        self.metrics = _metric_order([c for c in candidates if self._is_metric(c)])
        self._values = [[as_float(row.get(m)) for m in self.metrics] for row in self.rows]

    def _is_metric(self, column: str) -> bool:
        """Every value a number (or empty, or a number's text as CSV holds it), one at least finite."""
        values = [row.get(column) for row in self.rows]
        numeric = all(v is None or v == "" or _number_like(v) for v in values)
        return numeric and any(math.isfinite(as_float(v)) for v in values)

    def varying(self) -> list[str]:
        """Axis columns with more than one value, grid parameters first."""
        return [c for c, values in self.axes.items() if len(values) > 1]

    def default_filter(self, column: str) -> Any:
        """Seeds are averaged; every other column starts at its first value."""
        return MEAN if column == "seed" and len(self.axes[column]) > 1 else self.axes[column][0]

    def check_filter(self, column: Any, value: Any) -> Any:
        """``value`` as the column holds it (or "mean"), else a P2PError naming column and value."""
        if column not in self.axes:
            raise P2PError(f"filters: {column!r} is not a column to filter by; the columns are {', '.join(self.axes)}")
        values = self.axes[column]
        keys = {value_key(v): v for v in values}
        if value_key(value) in keys:
            return keys[value_key(value)]
        if value == MEAN:
            return MEAN
        shown = ", ".join(value_label(v) for v in values[:12]) + (", ..." if len(values) > 12 else "")
        raise P2PError(f"filters: {column_label(column)} has no value {value!r}; its values: {shown}, or 'mean'")

    def averages(self, column: str, value: Any) -> bool:
        """Whether the filter ``value`` averages ``column`` ("mean", unless the column holds that text)."""
        return value == MEAN and value_key(MEAN) not in {value_key(v) for v in self.axes[column]}

    def normal_filters(self, x: str, y: str, filters: dict) -> dict:
        """``filters`` for every column but x and y (those missing at their default)."""
        return {c: filters[c] if c in filters else self.default_filter(c) for c in self.axes if c not in (x, y)}

    def image_path(self, index: int) -> Path | None:
        image = self.rows[index].get("image") or ""
        if not image:
            return None
        path = Path(image)
        if not path.is_absolute() and self.root is not None:
            path = self.root / path
        return path

    def _groups(self, x: str, y: str, filters: dict):
        """(xs, ys, {(i, j): member rows, first row first}, averaged columns, fixed columns)."""
        fixed = {
            c: value_key(v)
            for c, v in filters.items()
            if c in self.axes and c not in (x, y) and not self.averages(c, v)
        }
        averaged = [c for c in self.axes if c not in (x, y) and c not in fixed]
        found: dict[tuple, list[int]] = {}
        for index, keys in enumerate(self._keys):
            if all(keys[c] == k for c, k in fixed.items()):
                found.setdefault((keys[x], keys[y]), []).append(index)
        xs = [v for v in self.axes[x] if any(gx == value_key(v) for gx, _ in found)]
        ys = [v for v in self.axes[y] if any(gy == value_key(v) for _, gy in found)]
        x_pos = {value_key(v): i for i, v in enumerate(xs)}
        y_pos = {value_key(v): j for j, v in enumerate(ys)}
        groups = {}
        for (gx, gy), members in found.items():
            order = sorted(members, key=lambda r: [_order(self.rows[r].get(c)) for c in averaged])
            groups[(x_pos[gx], y_pos[gy])] = order
        return xs, ys, groups, averaged, fixed

    def grid(self, x: str, y: str, filters: dict) -> dict:
        """The cells of the x-by-y grid under ``filters`` (see the module docstring), row by row."""
        xs, ys, groups, averaged, fixed = self._groups(x, y, filters)
        cells = [self._cell(i, j, groups[(i, j)]) for (i, j) in sorted(groups, key=lambda ij: (ij[1], ij[0]))]
        return {
            "x": x,
            "y": y,
            "xs": [value_label(v) for v in xs],
            "ys": [value_label(v) for v in ys],
            "averaged": [column_label(c) for c in averaged if len(self.axes[c]) > 1],
            "fixed": [[column_label(c), value_label(filters[c])] for c in fixed if len(self.axes[c]) > 1],
            "cells": cells,
        }

    def members(self, x: str, y: str, filters: dict, i: int, j: int) -> list[int]:
        """Row indices of the cell at column ``i``, row ``j`` of :meth:`grid`, its first row first."""
        return self._groups(x, y, filters)[2].get((i, j), [])

    def _cell(self, i: int, j: int, members: list[int]) -> dict:
        ok = [r for r in members if self.rows[r]["status"] == "ok"]
        first = (ok or members)[0]
        row = self.rows[first]
        means, spreads = [], []
        for m in range(len(self.metrics)):
            vals = [self._values[r][m] for r in ok if math.isfinite(self._values[r][m])]
            means.append(_json_float(sum(vals) / len(vals)) if vals else None)
            spreads.append(_json_float(_sample_std(vals)) if len(vals) > 1 else None)
        return {
            "i": i,
            "j": j,
            "row": first,
            "n": len(members),
            "errors": len(members) - len(ok),
            "error": "" if ok else str(row.get("error") or "the run failed"),
            "case": str(row.get("case_id")),
            "seed": value_label(row.get("seed")),
            "method": str(row.get("method")),
            "setting": setting_label(row.get("setting")),
            "values": means,
            "spreads": spreads,
        }


def _number_like(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, (int, float)):
        return True
    if isinstance(value, str):
        return value.strip().lower() == "nan" or not math.isnan(as_float(value))
    return type(value).__module__ == "numpy" and not math.isnan(as_float(value))


def _json_float(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def _sample_std(values: list[float]) -> float:
    mean = sum(values) / len(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def read_sweep(source: Any, root: Any = None) -> SweepTable:
    """A :class:`SweepTable` from a sweep folder (read with ``load_sweep``) or from rows
    (``root``: the folder their ``image`` paths are relative to)."""
    if isinstance(source, (str, Path)):
        folder = Path(source)
        if not folder.is_dir():
            raise P2PError(f"sweep folder {folder} does not exist")
        from .sweep_folder import load_sweep

        return SweepTable(load_sweep(folder), folder.resolve())
    return SweepTable(source, None if root is None else Path(root))
