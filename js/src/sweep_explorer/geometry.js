// Where the cells of a sweep grid go (pure: no DOM). The board is nx columns by ny rows of square
// cells `size` pixels wide with `gap` pixels between them; only the cells inside the scrolled
// viewport (plus a margin) are built, so a grid of thousands of cells stays quick to scroll.

/**
 * @typedef {{nx: number, ny: number, size: number, gap: number, pitch: number, width: number, height: number}} Geometry
 * @typedef {{i0: number, i1: number, j0: number, j1: number}} Range  columns [i0, i1), rows [j0, j1)
 */

/**
 * @param {number} nx columns
 * @param {number} ny rows
 * @param {number} size side of a cell in pixels
 * @param {number} [gap] pixels between cells
 * @returns {Geometry}
 */
export function gridGeometry(nx, ny, size, gap = 4) {
  for (const [name, v] of [["nx", nx], ["ny", ny], ["size", size], ["gap", gap]]) {
    if (!Number.isFinite(v) || v < 0) throw new RangeError(`${name} must be a number >= 0, got ${v}`);
  }
  const pitch = size + gap;
  return { nx, ny, size, gap, pitch, width: nx > 0 ? nx * pitch - gap : 0, height: ny > 0 ? ny * pitch - gap : 0 };
}

/** The pixel box of the cell in column i, row j. @param {Geometry} g */
export function cellBox(g, i, j) {
  return { left: i * g.pitch, top: j * g.pitch, size: g.size };
}

function span(offset, extent, pitch, n, margin) {
  const first = Math.floor(Math.max(0, offset) / pitch) - margin;
  const last = Math.ceil((Math.max(0, offset) + Math.max(0, extent)) / pitch) + margin;
  return [Math.max(0, Math.min(n, first)), Math.max(0, Math.min(n, last))];
}

/**
 * The columns and rows a viewport shows (with `margin` more on each side, built ahead of scrolling).
 * @param {Geometry} g
 * @param {{left: number, top: number, width: number, height: number}} view scroll offsets and size
 * @param {number} [margin] extra cells each side
 * @returns {Range}
 */
export function visibleRange(g, view, margin = 1) {
  if (g.pitch <= 0) return { i0: 0, i1: 0, j0: 0, j1: 0 };
  const [i0, i1] = span(view.left, view.width, g.pitch, g.nx, margin);
  const [j0, j1] = span(view.top, view.height, g.pitch, g.ny, margin);
  return { i0, i1, j0, j1 };
}

/** Whether column i, row j is inside `r`. @param {Range} r */
export function inRange(r, i, j) {
  return i >= r.i0 && i < r.i1 && j >= r.j0 && j < r.j1;
}

/**
 * The cells of `r` that exist (a grid can have holes), row by row.
 * @template {{i: number, j: number}} C
 * @param {Map<number, C>} byIndex cells by j * nx + i (see indexCells)
 * @param {Geometry} g
 * @param {Range} r
 * @returns {C[]}
 */
export function cellsIn(byIndex, g, r) {
  const out = [];
  for (let j = r.j0; j < r.j1; j++) {
    for (let i = r.i0; i < r.i1; i++) {
      const cell = byIndex.get(j * g.nx + i);
      if (cell) out.push(cell);
    }
  }
  return out;
}

/**
 * Cells by position (j * nx + i); a cell outside the grid is an error, not silently dropped.
 * @template {{i: number, j: number}} C
 * @param {C[]} cells
 * @param {number} nx
 * @param {number} ny
 * @returns {Map<number, C>}
 */
export function indexCells(cells, nx, ny) {
  const map = new Map();
  for (const cell of cells) {
    const { i, j } = cell;
    if (!Number.isInteger(i) || !Number.isInteger(j) || i < 0 || j < 0 || i >= nx || j >= ny) {
      throw new RangeError(`cell (${i}, ${j}) is outside the ${nx} x ${ny} grid`);
    }
    map.set(j * nx + i, cell);
  }
  return map;
}
