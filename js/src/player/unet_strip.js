// What the rules controlled, as data for the UNet strip (no DOM): Python sends the UNet's cells
// (`unet_cells`: attention layers and hooked modules in execution order, with their block and
// depth) and per step the indices of the cells a rule changed (`controlled`); this groups the
// cells into blocks and says in words what one step shows.

/** @typedef {{name: string, kind: "self" | "cross" | "feature", block: string, depth: number}} Cell */

export const KIND_NAMES = { self: "self-attention", cross: "cross-attention", feature: "module output" };
export const KIND_LETTERS = { self: "S", cross: "C", feature: "F" };

/**
 * The cells of the model's `unet_cells` (malformed ones dropped; Python validates).
 * @param {unknown} value
 * @returns {Cell[]}
 */
export function readCells(value) {
  if (!Array.isArray(value)) return [];
  return value.filter(
    (c) => c && typeof c.name === "string" && c.kind in KIND_NAMES && typeof c.block === "string" && Number.isInteger(c.depth)
  );
}

/**
 * Consecutive cells of one block together, in execution order, each cell with its index.
 * @param {Cell[]} cells
 * @returns {{block: string, depth: number, cells: Array<Cell & {index: number}>}[]}
 */
export function groupBlocks(cells) {
  const blocks = [];
  cells.forEach((cell, index) => {
    const last = blocks[blocks.length - 1];
    if (last && last.block === cell.block) last.cells.push({ ...cell, index });
    else blocks.push({ block: cell.block, depth: cell.depth, cells: [{ ...cell, index }] });
  });
  return blocks;
}

/**
 * The cell indices a rule changed at `step`, or null when the step is not known (yet).
 * @param {unknown} controlled the `controlled` trait: per step a list of cell indices
 * @param {number} step
 * @returns {Set<number> | null}
 */
export function controlledAt(controlled, step) {
  if (!Array.isArray(controlled) || !Number.isInteger(step) || step < 0 || step >= controlled.length) return null;
  const row = controlled[step];
  return new Set(Array.isArray(row) ? row.filter(Number.isInteger) : []);
}

/**
 * One line saying what a rule changed at a step, by kind and block (the strip's text alternative):
 * "step 4: self-attention in 4 of 7 layers (up 0, up 1); module output in 1 of 1 (up 1)".
 * @param {Cell[]} cells
 * @param {Set<number> | null} on
 * @param {number} step
 */
export function describeStep(cells, on, step) {
  const where = `step ${step + 1}`;
  if (on === null) return `${where}: not known yet`;
  if (on.size === 0) return `${where}: no layer under the rule's control`;
  const parts = [];
  for (const kind of Object.keys(KIND_NAMES)) {
    const all = cells.map((c, i) => [c, i]).filter(([c]) => c.kind === kind);
    const hit = all.filter(([, i]) => on.has(i));
    if (!hit.length) continue;
    const blocks = [...new Set(hit.map(([c]) => c.block))].join(", ");
    const noun = kind === "feature" ? "modules" : "layers";
    parts.push(`${KIND_NAMES[kind]} in ${hit.length} of ${all.length} ${noun} (${blocks})`);
  }
  return `${where}: ${parts.join("; ")}`;
}

/**
 * A cell's tooltip: its name, kind, and whether a rule changed it at the step shown.
 * @param {Cell} cell
 * @param {boolean | null} on null: the step is not known
 */
export function cellTitle(cell, on) {
  const state = on === null ? "" : on ? ": changed by the rule" : ": left alone";
  return `${cell.name} (${KIND_NAMES[cell.kind]})${state}`;
}
