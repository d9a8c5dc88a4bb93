"""Plotly figures of a sweep's rows (``load_sweep(DIR)``'s output: a list of dicts).

>>> from p2p_widgets.evaluate.sweep import load_sweep
>>> from p2p_widgets.evaluate import figures
>>> rows = load_sweep("runs/pocket")
>>> figures.tradeoff(rows)                              # structure distance vs CLIP, per method
>>> figures.type_bars(rows, "psnr_unedit_part")         # one bar per edit type and method

Both average the same way: the rows of one seed are averaged first (over the cases, and for the
bars over the settings too), then the seeds; error bars are the sample standard deviation of the
per-seed means (none with one seed). Rows whose edit failed and missing (NaN) values are left
out. A metric that no row has is a :class:`~p2p_widgets.errors.P2PError` naming it and the
metrics the rows have.
"""

from __future__ import annotations

import json
import math
import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from ..errors import P2PError
from .metric_registry import METRICS, TIMING
from .sweep_folder import HEAD_COLUMNS, MID_COLUMNS

STRUCTURE = "structure_distance"
CLIP_WHOLE = "clip_similarity_target_image"
# the sweep table's identity, file and status columns; everything else but p.<name> is a number to show
NOT_METRICS = frozenset((*HEAD_COLUMNS, *MID_COLUMNS, "status", "error"))
LABELS = {**{m.name: m.axis_label for m in METRICS}, TIMING: "seconds per row"}


POINT_HOVER = "%{text}<br>x %{x:.4g}<br>y %{y:.4g}<br>%{customdata[1]} seeds<extra>%{fullData.name}</extra>"


def _value(row: dict, metric: str) -> float:
    value = row.get(metric)
    try:
        value = float(value)
    except (TypeError, ValueError):
        return math.nan
    return value


def _ok_rows(rows: Any) -> list[dict]:
    if isinstance(rows, (str, bytes, dict)) or not isinstance(rows, Iterable):
        raise P2PError(f"rows must be a list of dicts (load_sweep's output), got {type(rows).__name__}")
    rows = list(rows)
    if not all(isinstance(r, dict) for r in rows):
        raise P2PError("rows must be a list of dicts (load_sweep's output)")
    ok = [r for r in rows if r.get("status", "ok") == "ok"]
    if not ok:
        raise P2PError(f"no finished rows to plot ({len(rows)} rows, none with status 'ok')")
    return ok


def metric_columns(rows: Sequence[dict]) -> list[str]:
    """The columns of ``rows`` that hold numbers (the metrics, and ``seconds``)."""
    names = dict.fromkeys(c for r in rows for c in r if c not in NOT_METRICS and not c.startswith("p."))
    return [c for c in names if any(math.isfinite(_value(r, c)) for r in rows)]


def _check_metric(rows: Sequence[dict], metric: Any, what: str) -> str:
    if not isinstance(metric, str) or metric not in metric_columns(rows):
        have = ", ".join(metric_columns(rows)) or "none"
        raise P2PError(f"{what}: the rows have no metric {metric!r}; their metrics: {have}")
    return metric


def setting_label(setting: Any) -> str:
    """A row's ``setting`` (JSON text of the grid point) as ``cross=0.4, self_attn=0.6``."""
    if isinstance(setting, str):
        try:
            setting = json.loads(setting) if setting else {}
        except json.JSONDecodeError:
            return setting
    if not isinstance(setting, dict):
        return _text(setting)
    return ", ".join(f"{k}={_text(v)}" for k, v in sorted(setting.items())) or "(defaults)"


def _text(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def seed_means(rows: Iterable[dict], metrics: Sequence[str]) -> dict:
    """``{seed: [mean of each metric over the rows of that seed]}`` (NaN values left out; NaN where a
    seed has no value of a metric)."""
    by_seed: dict = defaultdict(list)
    for row in rows:
        by_seed[row.get("seed")].append(row)
    out = {}
    for seed, group in by_seed.items():
        means = []
        for metric in metrics:
            values = [v for v in (_value(r, metric) for r in group) if math.isfinite(v)]
            means.append(statistics.fmean(values) if values else math.nan)
        out[seed] = means
    return out


def over_seeds(per_seed: dict, k: int) -> tuple[float, float, int]:
    """(mean, sample standard deviation, seeds) of metric ``k`` over the seeds that have it."""
    values = [means[k] for means in per_seed.values() if math.isfinite(means[k])]
    if not values:
        return math.nan, math.nan, 0
    spread = statistics.stdev(values) if len(values) > 1 else math.nan
    return statistics.fmean(values), spread, len(values)


def _edit_type_filter(rows: list[dict], edit_type: Any) -> list[dict]:
    if edit_type is None:
        return rows
    chosen = [r for r in rows if edit_type in (r.get("edit_type"), r.get("edit_type_name"))]
    if not chosen:
        have = sorted({str(r.get("edit_type_name")) for r in rows})
        raise P2PError(f"edit_type: no rows of edit type {edit_type!r}; the rows have {', '.join(have)}")
    return chosen


def _setting_order(rows: list[dict]) -> list[str]:
    """Settings in grid order: by their parameters' values, numbers by value."""

    def key(setting):
        try:
            values = json.loads(setting)
        except (TypeError, json.JSONDecodeError):
            return [(1, str(setting))]
        if not isinstance(values, dict):
            return [(1, str(setting))]
        return [(0, v) if isinstance(v, (int, float)) else (1, json.dumps(v)) for _, v in sorted(values.items())]

    return sorted({r.get("setting", "") for r in rows}, key=key)


def tradeoff(rows, x: str = STRUCTURE, y: str = CLIP_WHOLE, *, edit_type=None):
    """Structure distance (``x``) against CLIP score of the whole edited image (``y``): one trace
    per method, one point per setting (the mean over seeds of each seed's mean over the cases),
    error bars over the seeds. ``edit_type``: only the rows of that type (id or name)."""
    import plotly.graph_objects as go

    ok = _edit_type_filter(_ok_rows(rows), edit_type)
    _check_metric(ok, x, "x")
    _check_metric(ok, y, "y")
    fig = go.Figure()
    for method in sorted({r.get("method") for r in ok}, key=str):
        mine = [r for r in ok if r.get("method") == method]
        points = []
        for setting in _setting_order(mine):
            per_seed = seed_means([r for r in mine if r.get("setting") == setting], [x, y])
            (mx, sx, nx), (my, sy, ny) = over_seeds(per_seed, 0), over_seeds(per_seed, 1)
            if math.isfinite(mx) and math.isfinite(my):
                points.append((setting, mx, sx, my, sy, min(nx, ny)))
        if not points:
            continue
        fig.add_trace(
            go.Scatter(
                x=[p[1] for p in points],
                y=[p[3] for p in points],
                error_x=dict(type="data", array=[p[2] for p in points], visible=True),
                error_y=dict(type="data", array=[p[4] for p in points], visible=True),
                mode="markers+lines",
                name=str(method),
                text=[setting_label(p[0]) for p in points],
                customdata=[[p[0], p[5]] for p in points],
                hovertemplate=POINT_HOVER,
            )
        )
    title = "trade-off per method" + (f" ({edit_type})" if edit_type is not None else "")
    fig.update_layout(
        title=title, xaxis_title=LABELS.get(x, x), yaxis_title=LABELS.get(y, y), legend_title_text="method"
    )
    return fig


def type_bars(rows, metric: str = CLIP_WHOLE, *, setting=None):
    """One bar per edit type and method: ``metric`` averaged over each seed's rows of that type
    (every case and setting, or only ``setting``: a dict or the rows' JSON text), then over the
    seeds; error bars over the seeds."""
    import plotly.graph_objects as go

    ok = _ok_rows(rows)
    _check_metric(ok, metric, "metric")
    if setting is not None:
        wanted = json.dumps(setting, sort_keys=True) if isinstance(setting, dict) else setting
        chosen = [r for r in ok if _same_setting(r.get("setting"), wanted)]
        if not chosen:
            raise P2PError(f"setting: no rows with setting {wanted}; the rows have {', '.join(_setting_order(ok))}")
        ok = chosen
    types = sorted({(r.get("edit_type"), str(r.get("edit_type_name"))) for r in ok}, key=lambda t: (str(t[0]), t[1]))
    fig = go.Figure()
    for method in sorted({r.get("method") for r in ok}, key=str):
        means, spreads, seeds = [], [], []
        for edit_type, _ in types:
            group = [r for r in ok if r.get("method") == method and r.get("edit_type") == edit_type]
            mean, spread, n = over_seeds(seed_means(group, [metric]), 0)
            means.append(mean)
            spreads.append(spread)
            seeds.append(n)
        fig.add_trace(
            go.Bar(
                x=[name for _, name in types],
                y=means,
                error_y=dict(type="data", array=spreads, visible=True),
                name=str(method),
                customdata=seeds,
                hovertemplate="%{x}: %{y:.4g}<br>%{customdata} seeds<extra>%{fullData.name}</extra>",
            )
        )
    fig.update_layout(
        barmode="group",
        title=f"{metric} per edit type" + (f" ({setting_label(setting)})" if setting is not None else ""),
        xaxis_title="edit type",
        yaxis_title=LABELS.get(metric, metric),
        legend_title_text="method",
    )
    return fig


def _same_setting(a: Any, b: Any) -> bool:
    try:
        return json.loads(a) == json.loads(b)
    except (TypeError, json.JSONDecodeError):
        return a == b
