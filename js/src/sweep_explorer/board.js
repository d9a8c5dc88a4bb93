// The grid itself: cells built only for the scrolled viewport (see geometry.js), each a button
// with the row's thumbnail framed in the metric's colour, and the column and row labels beside it.
import { cellBox, cellsIn, gridGeometry, indexCells, inRange, visibleRange } from "./geometry.js";
import { cellName } from "./tooltip.js";

/** @typedef {ReturnType<typeof import("./view.js").createView>} View */

const MARGIN = 2; // cells built beyond each edge of the viewport

/** Lay the grid out again (a new grid or cell size): every built cell goes. @param {View} v */
export function relayout(v) {
  const grid = v.grid();
  const size = v.model.get("cell_size") || 96;
  v.geo = gridGeometry(grid.xs.length, grid.ys.length, size, Math.max(2, Math.round(size / 24)));
  v.byIndex = indexCells(grid.cells, grid.xs.length, grid.ys.length);
  v.cells.style.width = `${v.geo.width}px`;
  v.cells.style.height = `${v.geo.height}px`;
  v.root.style.setProperty("--p2p-sweep-cell", `${size}px`);
  // the row labels' column fits the longest label (up to 16em; longer ones end in an ellipsis)
  const longest = grid.ys.reduce((n, s) => Math.max(n, s.length), 1);
  v.root.style.setProperty("--p2p-sweep-label", `${Math.min(16, Math.max(3, 0.6 * longest + 1)).toFixed(1)}em`);
  for (const node of v.built.values()) node.remove();
  v.built.clear();
  v.labelKey = "";
  v.cells.setAttribute("aria-label", `${grid.ys.length} by ${grid.xs.length} cells`);
  v.empty.hidden = grid.cells.length > 0;
  v.root.dataset.cells = String(grid.cells.length);
  v.axesTitle.textContent = `across: ${v.label(grid.x)} →   down: ${v.label(grid.y)} ↓`;
  paintVisible(v);
}

function viewport(v) {
  const s = v.scroll;
  // before the first layout (or in a DOM without one) assume a 640 x 480 view
  return { left: s.scrollLeft || 0, top: s.scrollTop || 0, width: s.clientWidth || 640, height: s.clientHeight || 480 };
}

/** Build the cells the viewport shows and drop the rest; ask for their thumbnails. @param {View} v */
export function paintVisible(v) {
  if (!v.geo) return;
  const view = viewport(v);
  const range = visibleRange(v.geo, view, MARGIN);
  v.range = range;
  for (const [key, node] of v.built) {
    const i = key % v.geo.nx;
    const j = Math.floor(key / v.geo.nx);
    if (!inRange(range, i, j)) {
      node.remove();
      v.built.delete(key);
    }
  }
  const shown = cellsIn(v.byIndex, v.geo, range);
  for (const cell of shown) {
    const key = cell.j * v.geo.nx + cell.i;
    let node = v.built.get(key);
    if (!node) {
      node = buildCell(v, cell);
      v.built.set(key, node);
      v.cells.append(node);
    }
    paintCell(v, node, cell);
  }
  v.root.dataset.built = String(v.built.size);
  v.thumbs.want(shown.map((c) => c.row));
  paintLabels(v, range, view);
}

function buildCell(v, cell) {
  const box = cellBox(v.geo, cell.i, cell.j);
  return v.el("button", {
    class: "p2p-sweep__cell",
    type: "button",
    dataset: { row: cell.row, i: cell.i, j: cell.j },
    style: { left: `${box.left}px`, top: `${box.top}px`, width: `${box.size}px`, height: `${box.size}px` },
  });
}

/** Colour, thumbnail, selection and name of one built cell. @param {View} v */
export function paintCell(v, node, cell) {
  const k = v.metricIndex();
  const value = k >= 0 ? cell.values[k] : null;
  const color = v.scale.color(value);
  node.style.setProperty("--p2p-sweep-color", color || "transparent");
  node.classList.toggle("is-missing", color === null);
  node.classList.toggle("is-error", !!cell.error);
  node.classList.toggle("is-selected", cell.row === v.model.get("selected"));
  node.dataset.value = value === null ? "" : String(value);
  node.setAttribute("aria-label", cellName(v.grid(), cell, v.model.get("metrics") || [], v.model.get("metric"), v.label));
  const url = v.thumbs.get(cell.row);
  const img = node.firstElementChild;
  if (url) {
    if (img && img.tagName === "IMG" && img.getAttribute("src") === url) return;
    node.replaceChildren(v.el("img", { class: "p2p-sweep__thumb", src: url, alt: "", draggable: false }));
  } else {
    const text = cell.error ? "failed" : url === null ? "no image" : "…";
    if (!img || img.textContent !== text) node.replaceChildren(v.el("span", { class: "p2p-sweep__note", text }));
  }
}

/** The labels of the visible columns and rows, kept level with the scrolled cells. */
function paintLabels(v, range, view) {
  const grid = v.grid();
  const key = JSON.stringify([range, v.geo.pitch, grid.xs.length, grid.ys.length]);
  if (key !== v.labelKey) {
    v.labelKey = key;
    const cols = [];
    for (let i = range.i0; i < range.i1; i++) {
      const { left, size } = cellBox(v.geo, i, 0);
      cols.push(v.el("span", { class: "p2p-sweep__label", text: grid.xs[i], title: grid.xs[i], style: { left: `${left}px`, width: `${size}px` } }));
    }
    const rows = [];
    for (let j = range.j0; j < range.j1; j++) {
      const { top, size } = cellBox(v.geo, 0, j);
      rows.push(v.el("span", { class: "p2p-sweep__label", text: grid.ys[j], title: grid.ys[j], style: { top: `${top}px`, height: `${size}px` } }));
    }
    v.colInner.replaceChildren(...cols);
    v.rowInner.replaceChildren(...rows);
  }
  v.colInner.style.transform = `translateX(${-view.left}px)`;
  v.rowInner.style.transform = `translateY(${-view.top}px)`;
}

/** Repaint the built cells (colour, selection, newly arrived thumbnails). @param {View} v */
export function repaintBuilt(v, rows = null) {
  for (const [key, node] of v.built) {
    const cell = v.byIndex.get(key);
    if (cell && (rows === null || rows.has(cell.row))) paintCell(v, node, cell);
  }
}
