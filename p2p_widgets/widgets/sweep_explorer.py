"""SweepExplorer: the rows of a sweep as an image grid, laid out by two chosen columns.

>>> from p2p_widgets.widgets import Studio
>>> from p2p_widgets.widgets.sweep_explorer import SweepExplorer
>>> studio = Studio()
>>> explorer = SweepExplorer("runs/pocket", studio=studio)   # a sweep folder (or load_sweep's rows)
>>> display(explorer, studio)        # hover a cell for its numbers; click it to load that edit
>>> explorer.show(x="p.cross", y="seed", metric="psnr_unedit_part", case_id="600000000003")

The grid's columns and rows are the values of two columns of the sweep table (``x`` and ``y``: a
grid parameter ``p.<name>``, ``method``, ``seed``, ``edit_type_name``, ``case_id`` or
``inversion``); every other of those columns is fixed to one value or averaged (``filters``:
``{column: value or "mean"}``). Each cell shows the edited image of its first row (in the order of
the averaged columns' values: the lowest seed first) framed in the colour of ``metric``, averaged
over the cell's rows; hovering shows every metric (mean and sample spread), the case, seed, method
and setting. Clicking a cell loads its first row's edit into the ``studio``: ``Studio.load_json``
with the row's EditSpec, after ``Studio.set_image`` with the dataset image when the row edited an
inversion of a real image.

Python computes the grid (``grid`` trait, from :class:`~p2p_widgets.evaluate.table.SweepTable`) and
validates every front-end write: ``x``, ``y``, ``metric`` must be columns of the table,
``filters`` values must be values of their column, the rows a message names must exist. A refused
write shows its error in the widget, which keeps working. Thumbnails travel as PNG bytes in binary
buffers, only for the cells the page shows (the front end asks for them as cells scroll into view),
downscaled to ``thumb_side`` pixels.
"""

from __future__ import annotations

import io
import math
from collections import OrderedDict
from pathlib import Path
from typing import Any

import traitlets

from ..errors import MessageError, P2PError, is_int
from ..evaluate.metric_registry import better_end
from ..evaluate.table import SweepTable, column_label, read_sweep, value_label
from ._base import P2PWidget, in_range, on_message

MAX_THUMBS_PER_REQUEST = 256
_THUMB_CACHE = 2048


def thumbnail_png(path: Path, side: int) -> bytes:
    """The PNG bytes of ``path``: the file itself when it is a PNG no larger than ``side``,
    else the image downscaled to fit ``side`` (box filter: deterministic, no ringing)."""
    from PIL import Image, UnidentifiedImageError

    data = path.read_bytes()
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.format == "PNG" and max(image.size) <= side:
                return data
            image = image.convert("RGB")
            scale = side / max(image.size)
            size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
            if max(image.size) > side:
                image = image.resize(size, Image.Resampling.BOX)
            out = io.BytesIO()
            image.save(out, format="PNG")
            return out.getvalue()
    except (UnidentifiedImageError, OSError) as exc:
        raise P2PError(f"{path} is not an image ({exc})") from None


class SweepExplorer(P2PWidget):
    """The rows of a sweep as an image grid (see the module docstring).

    Parameters
    ----------
    sweep:
        A sweep folder (read with :func:`p2p_widgets.evaluate.sweep.load_sweep`) or its rows.
    studio:
        A :class:`~p2p_widgets.widgets.studio.Studio` that a clicked cell's edit is loaded into;
        None: a click selects the row (:attr:`selected_row`).
    root:
        With rows: the folder their ``image`` paths are relative to (a folder's own rows know it).
    thumb_side:
        Largest side of a thumbnail in pixels; larger images are downscaled before sending.
    x, y, metric, filters, cell_size:
        The starting view (the same names are traits); defaults: the first two grid parameters
        that vary, the first metric, seeds averaged, every other column at its first value.
    """

    _bundle = "sweep_explorer"
    _frontend_keys = frozenset({"x", "y", "metric", "filters", "cell_size"})

    # the table (written by Python only)
    axes = traitlets.List(help="[{'name', 'label', 'values', 'labels'}]: the columns a grid is laid out by.").tag(
        sync=True
    )
    metrics = traitlets.List(help="[{'name', 'better'}]: the metric columns ('better': 'lower' or 'higher').").tag(
        sync=True
    )
    n_rows = traitlets.Int(0, help="Rows in the sweep.").tag(sync=True)
    version = traitlets.Int(0, help="Bumped when the rows are read again (thumbnails of older rows are dropped).").tag(
        sync=True
    )
    grid = traitlets.Dict(help="The cells of the view (SweepTable.grid), computed here.").tag(sync=True)
    selected = traitlets.Int(-1, help="The row opened last (-1: none).").tag(sync=True)
    status = traitlets.Unicode("", help="What the last click did, in words.").tag(sync=True)
    # the view (the front end may write these)
    x = traitlets.Unicode("", help="Column laid out across.").tag(sync=True)
    y = traitlets.Unicode("", help="Column laid out down.").tag(sync=True)
    metric = traitlets.Unicode("", help="Metric shown as colour.").tag(sync=True)
    filters = traitlets.Dict(help="{column: value or 'mean'} for every column but x and y.").tag(sync=True)
    cell_size = traitlets.Int(96, help="Side of a cell in CSS pixels.").tag(sync=True)

    def __init__(self, sweep, studio=None, *, root=None, thumb_side: int = 128, **kwargs: Any):
        if studio is not None and not callable(getattr(studio, "load_json", None)):
            raise P2PError(f"studio must be a Studio (something with load_json), got {type(studio).__name__}")
        if not is_int(thumb_side) or not 8 <= thumb_side <= 1024:
            raise P2PError(f"thumb_side must be an integer from 8 to 1024, got {thumb_side!r}")
        self._source = sweep if isinstance(sweep, (str, Path)) else None
        self._table = read_sweep(sweep, root)
        self._ready = False
        self._thumbs: OrderedDict[tuple, bytes] = OrderedDict()
        self.studio = studio
        self.thumb_side = int(thumb_side)
        super().__init__(**kwargs)
        self._ready = True
        self._publish(keep=True)

    # -- the table ---------------------------------------------------------------------------------

    @property
    def table(self) -> SweepTable:
        return self._table

    @property
    def rows(self) -> list[dict]:
        return self._table.rows

    @property
    def selected_row(self) -> dict | None:
        """The row opened (clicked) last, or None."""
        return self.rows[self.selected] if 0 <= self.selected < len(self.rows) else None

    def _publish(self, keep: bool) -> None:
        """Send the table's columns and (re)start the view; ``keep``: keep x, y, metric and filters
        where they are still columns and values of the table."""
        table = self._table
        order = table.varying() + [c for c in table.axes if c not in table.varying()]
        x = self.x if keep and self.x in table.axes else None
        y = self.y if keep and self.y in table.axes and self.y != x else None
        x = x or next(c for c in order if c != y)
        y = y or next(c for c in order if c != x)
        metric = self.metric if keep and self.metric in table.metrics else (table.metrics or [""])[0]
        filters = {}
        for column, value in (self.filters if keep else {}).items():
            try:
                filters[column] = table.check_filter(column, value)
            except P2PError:
                pass
        with self.hold_sync():
            self.axes = [
                {
                    "name": c,
                    "label": column_label(c),
                    "values": [_plain(v) for v in vs],
                    "labels": [value_label(v) for v in vs],
                }
                for c, vs in table.axes.items()
            ]
            self.metrics = [{"name": m, "better": better_end(m)} for m in table.metrics]
            self.n_rows = len(table.rows)
            self._ready = False  # one grid for the whole change, not one per trait
            with self.hold_trait_notifications():
                self.x, self.y, self.metric = x, y, metric
                self.filters = table.normal_filters(x, y, filters)
            self._ready = True
            self._regrid()

    def refresh(self) -> None:
        """Read the sweep folder again (a sweep still running has more rows now); the view stays."""
        if self._source is None:
            raise P2PError("this explorer was made from rows, not a folder: make a new one with the new rows")
        self._table = read_sweep(self._source)
        self._thumbs.clear()
        with self.hold_sync():
            self.version += 1
            self.selected = -1
            self._publish(keep=True)

    # -- validation --------------------------------------------------------------------------------

    def _check_axis(self, proposal, other: str) -> str:
        value, name = proposal["value"], proposal["trait"].name
        if value not in self._table.axes:
            raise traitlets.TraitError(
                f"{name} must be one of the columns {', '.join(self._table.axes)}; {value!r} is not"
            )
        if value == getattr(self, other):
            raise traitlets.TraitError(f"x and y must be different columns; both would be {value!r}")
        return value

    @traitlets.validate("x")
    def _check_x(self, proposal):
        return self._check_axis(proposal, "y")

    @traitlets.validate("y")
    def _check_y(self, proposal):
        return self._check_axis(proposal, "x")

    @traitlets.validate("metric")
    def _check_metric(self, proposal):
        value = proposal["value"]
        if value not in self._table.metrics and not (value == "" and not self._table.metrics):
            names = ", ".join(self._table.metrics) or "(none: no column holds numbers)"
            raise traitlets.TraitError(f"metric must be one of the metric columns {names}; {value!r} is not")
        return value

    @traitlets.validate("filters")
    def _check_filters(self, proposal):
        value = proposal["value"]
        try:
            return {c: self._table.check_filter(c, v) for c, v in value.items()}
        except P2PError as exc:
            raise traitlets.TraitError(str(exc)) from None

    @traitlets.validate("cell_size")
    def _check_cell_size(self, proposal):
        return in_range(proposal, 24, 256)

    @traitlets.observe("x", "y", "filters")
    def _on_view(self, change) -> None:
        self._regrid()

    def _regrid(self) -> None:
        if not self._ready:
            return
        filters = self._table.normal_filters(self.x, self.y, self.filters)
        if filters != self.filters:
            self.filters = filters  # observed: the grid follows from there
            return
        self.grid = self._table.grid(self.x, self.y, filters)

    def show(self, x: str | None = None, y: str | None = None, metric: str | None = None, **filters: Any) -> None:
        """Change the view at once: ``show(x="p.cross", y="seed", metric="psnr", case_id="pb-0003")``.

        Filter keywords name a column (``p.cross`` may be written ``cross``); "mean" averages it."""
        named = {}
        for key, value in filters.items():
            column = key if key in self._table.axes else f"p.{key}"
            if column not in self._table.axes:
                raise P2PError(f"{key!r} is not a column to filter by; the columns are {', '.join(self._table.axes)}")
            named[column] = value
        try:
            with self.hold_sync(), self.hold_trait_notifications():
                self.x = self.x if x is None else x
                self.y = self.y if y is None else y
                self.metric = self.metric if metric is None else metric
                self.filters = {**self.filters, **named}
        except traitlets.TraitError as exc:
            raise P2PError(str(exc)) from None

    def cell_rows(self, i: int, j: int) -> list[dict]:
        """The rows of the cell at column ``i``, row ``j`` of the grid shown (its first row first)."""
        return [self.rows[r] for r in self._table.members(self.x, self.y, self.filters, i, j)]

    # -- opening an edit ---------------------------------------------------------------------------

    def open_row(self, index: int) -> dict:
        """Load row ``index``'s edit into the Studio (see the module docstring); returns the row."""
        if not is_int(index) or not 0 <= index < len(self.rows):
            raise P2PError(f"row must be a row number from 0 to {len(self.rows) - 1}, got {index!r}")
        row = self.rows[index]
        where = f"row {index} ({row.get('case_id')}, {row.get('method')}, seed {row.get('seed')})"
        if self.studio is None:
            self._opened(index, f"selected {where}: no Studio attached (explorer.selected_row has it)")
            return row
        spec = _row_spec(index, row)
        if spec.inversion is None:
            self.studio.load_json(spec)
        else:
            self._load_inverted(index, row, spec)
        self._opened(index, f"loaded {where} into the Studio: press Run there to run it")
        return row

    def _load_inverted(self, index: int, row: dict, spec) -> None:
        """The row's dataset image first (the Studio checks it is the inverted one), then the edit;
        the Studio's image goes back if the edit does not load."""
        path = Path(str(row.get("source_image") or ""))
        if not path.is_file():
            raise P2PError(f"row {index} edits a real image, and its source_image {str(path)!r} is not a file")
        before = self.studio.image
        self.studio.set_image(path, name=path.name)
        try:
            self.studio.load_json(spec)
        except Exception:
            if before is None:
                self.studio.clear_image()
            else:
                self.studio.set_image(before)
            raise

    def _opened(self, index: int, text: str) -> None:
        with self.hold_sync():
            self.selected = index
            self.status = text
            if self.error.startswith("open:"):
                self.clear_error()

    # -- messages from the front end ---------------------------------------------------------------

    @on_message("open")
    def _on_open(self, content: dict, buffers: list) -> None:
        index = content.get("row")
        if not is_int(index) or not 0 <= index < len(self.rows):
            raise MessageError(f"'row' must be a row number from 0 to {len(self.rows) - 1}, got {index!r}")
        if index not in {cell["row"] for cell in self.grid.get("cells", [])}:
            raise MessageError(f"row {index} is not a cell of the grid shown")
        try:
            self.open_row(index)
        except P2PError as exc:
            raise MessageError(str(exc)) from None

    @on_message("thumbs")
    def _on_thumbs(self, content: dict, buffers: list) -> None:
        version, wanted = content.get("version"), content.get("rows")
        if not is_int(version):
            raise MessageError(f"'version' must be an integer, got {version!r}")
        if not isinstance(wanted, list) or not all(is_int(r) for r in wanted):
            raise MessageError("'rows' must be a list of row numbers")
        if len(wanted) > MAX_THUMBS_PER_REQUEST:
            raise MessageError(f"at most {MAX_THUMBS_PER_REQUEST} thumbnails per request, got {len(wanted)}")
        if version != self.version:
            return  # asked before the rows were read again: the front end asks anew for the new version
        bad = [r for r in wanted if not 0 <= r < len(self.rows)]
        if bad:
            raise MessageError(f"rows {bad[:5]} are outside 0 to {len(self.rows) - 1}")
        sent, missing, pngs = [], [], []
        for index in dict.fromkeys(wanted):
            png = self.thumbnail(index)
            if png is None:
                missing.append(index)
            else:
                sent.append(index)
                pngs.append(png)
        self.send_binary({"type": "thumbs", "version": self.version, "rows": sent, "missing": missing}, pngs)

    def thumbnail(self, index: int) -> bytes | None:
        """PNG bytes of row ``index``'s edited image (at most ``thumb_side``), None when it has none."""
        key = (self.version, index)
        if key in self._thumbs:
            self._thumbs.move_to_end(key)
            return self._thumbs[key]
        path = self._table.image_path(index)
        if path is None or not path.is_file():
            return None
        try:
            png = thumbnail_png(path, self.thumb_side)
        except P2PError:
            return None
        self._thumbs[key] = png
        while len(self._thumbs) > _THUMB_CACHE:
            self._thumbs.popitem(last=False)
        return png

    def __repr__(self) -> str:
        return f"SweepExplorer(rows={len(self.rows)}, x={self.x!r}, y={self.y!r}, metric={self.metric!r})"


def _plain(value: Any) -> Any:
    """A column value as JSON holds it (a NaN as null)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _row_spec(index: int, row: dict):
    from ..engine.spec import EditSpec

    text = row.get("spec")
    if not text:
        raise P2PError(f"row {index} ({row.get('row_id')}) has no spec: its run failed before the edit was made")
    try:
        return EditSpec.from_json(text) if isinstance(text, str) else EditSpec.from_dict(text)
    except P2PError as exc:
        raise P2PError(f"row {index} ({row.get('row_id')}): its spec does not load: {exc}") from None
