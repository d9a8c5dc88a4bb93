"""Parameter grids of a sweep: ``{name: [values, ...]}`` checked, counted, expanded and applied to
methods (every point checked against every method before a row runs), and the JSON they come in."""

from __future__ import annotations

import itertools
import json
import math

from ..errors import P2PError, check_nesting

SEED = "seed"  # a grid key the sweep takes as its seeds
MAX_DEPTH = 32  # nesting of a method's or grid's JSON; deeper would only exhaust Python's stack


def is_json_value(value) -> bool:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return False
    return True


def parse_json(text: str, what: str):
    """``text`` parsed as JSON nesting at most MAX_DEPTH levels, or a P2PError naming ``what``."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise P2PError(f"{what} is not valid JSON: {exc}") from None
    except RecursionError:
        raise P2PError(f"{what} nests deeper than {MAX_DEPTH} levels") from None
    check_nesting(what, data, MAX_DEPTH)
    return data


def check_grid(grid) -> dict:
    """``grid`` as ``{name: [values, ...]}`` (sorted by name), or a P2PError naming what is malformed."""
    if grid is None:
        return {}
    if isinstance(grid, str):
        grid = parse_json(grid, "the grid")
    if not isinstance(grid, dict):
        raise P2PError(f'a grid is an object {{"name": [values, ...]}}, got {type(grid).__name__}')
    for name in grid:
        if not isinstance(name, str) or not name:
            raise P2PError(f"grid parameter names must be non-empty strings, got {name!r}")
    checked = {}
    for name in sorted(grid):
        values = grid[name]
        check_nesting(f"grid parameter {name!r}", values, MAX_DEPTH)
        if not isinstance(values, list) or not values:
            raise P2PError(f"grid parameter {name!r} needs a non-empty list of values, got {values!r}")
        for value in values:
            if not is_json_value(value) or (isinstance(value, float) and not math.isfinite(value)):
                raise P2PError(f"grid parameter {name!r}: {value!r} is not a plain JSON value")
        encoded = [json.dumps(v, sort_keys=True) for v in values]
        if len(set(encoded)) != len(encoded):
            raise P2PError(f"grid parameter {name!r} lists a value twice: {values!r}")
        checked[name] = list(values)
    return checked


def grid_size(grid) -> int:
    """How many points ``grid`` has (without listing them)."""
    return math.prod(len(values) for values in check_grid(grid).values())


def expand_grid(grid) -> list[dict]:
    """Every point of ``grid`` (the cartesian product, parameters sorted by name); ``[{}]`` for none."""
    grid = check_grid(grid)
    names = list(grid)
    return [dict(zip(names, values)) for values in itertools.product(*(grid[n] for n in names))]


def apply_grid(methods, grid) -> list[tuple]:
    """``(method, setting, configured method)`` for every method and grid point, each point checked
    against each method before anything runs (``seed`` is the sweep's, not a method parameter)."""
    points = expand_grid({k: v for k, v in check_grid(grid).items() if k != SEED})
    out = []
    for method in methods:
        known = method.parameters()
        for point in points:
            for name in point:
                if name not in known:
                    raise P2PError(
                        f"unknown grid parameter {name!r} for method {method.name!r}; "
                        f"its parameters are: {', '.join([*known, SEED])}"
                    )
            try:
                out.append((method, point, method.with_params(**point)))
            except P2PError as exc:
                raise P2PError(f"grid point {json.dumps(point, sort_keys=True)}: {exc}") from None
    return out
