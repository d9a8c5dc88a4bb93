// What hovering a cell says (pure: no DOM): its place in the grid, every metric (mean and spread
// over the rows averaged into it), and which row its image and its click are.
import { formatValue } from "./colors.js";

/**
 * @typedef {{
 *   i: number, j: number, row: number, n: number, errors: number, error: string,
 *   case: string, seed: string, method: string, setting: string,
 *   values: Array<number | null>, spreads: Array<number | null>,
 * }} Cell  one cell of the `grid` trait (SweepTable.grid in widgets/sweep_explorer.py)
 * @typedef {{
 *   x: string, y: string, xs: string[], ys: string[], averaged: string[],
 *   fixed: Array<[string, string]>, cells: Cell[],
 * }} Grid
 */

/**
 * The tooltip's lines, [label, text] each; the chosen metric comes first among the metrics.
 * @param {Grid} grid
 * @param {Cell} cell
 * @param {Array<{name: string}>} metrics the metric columns, in the order of cell.values
 * @param {string} chosen the metric shown as colour
 * @param {(column: string) => string} label a column's label
 * @returns {Array<[string, string]>}
 */
export function cellLines(grid, cell, metrics, chosen, label) {
  const lines = [
    [label(grid.x), grid.xs[cell.i] ?? "?"],
    [label(grid.y), grid.ys[cell.j] ?? "?"],
    ...(grid.fixed || []).map(([name, value]) => [name, value]),
  ];
  if (cell.n > 1) {
    const failed = cell.errors ? `, ${cell.errors} failed` : "";
    lines.push(["mean of", `${cell.n} rows (over ${(grid.averaged || []).join(", ") || "rows"}${failed})`]);
  } else if (cell.errors) lines.push(["status", "failed"]);
  const order = metrics.map((m, k) => k).sort((a, b) => (metrics[b].name === chosen) - (metrics[a].name === chosen));
  for (const k of order) {
    const spread = cell.spreads && cell.spreads[k];
    const text = formatValue(cell.values[k]) + (typeof spread === "number" ? ` ± ${formatValue(spread)}` : "");
    lines.push([metrics[k].name, text]);
  }
  lines.push(["image", `case ${cell.case}, seed ${cell.seed}`], ["method", cell.method], ["setting", cell.setting]);
  if (cell.error) lines.push(["error", cell.error]);
  return lines;
}

/** A cell's accessible name: where it is and the chosen metric's value. */
export function cellName(grid, cell, metrics, chosen, label) {
  const k = metrics.findIndex((m) => m.name === chosen);
  const value = k >= 0 ? `, ${chosen} ${formatValue(cell.values[k])}` : "";
  return `${label(grid.x)} ${grid.xs[cell.i]}, ${label(grid.y)} ${grid.ys[cell.j]}${value}`;
}
