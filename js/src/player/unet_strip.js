// What the rules controlled, as data for the model strip (no DOM): Python sends the model's cells
// (`unet_cells`: attention sites and hooked modules in execution order, with their block and
// depth) and per step the indices of the cells a rule changed (`controlled`); this groups the
// cells into blocks (a UNet's drawn as a U, a DiT's double- then single-stream blocks in a row)
// and says in words what one step shows.

/** @typedef {{name: string, kind: "self" | "cross" | "feature" | "joint" | "single" | "image-self", block: string, depth: number}} Cell */

export const KIND_NAMES = {
  self: "self-attention",
  cross: "cross-attention",
  feature: "module output",
  joint: "joint attention",
  single: "single-stream attention",
  "image-self": "image self-attention",
};
export const KIND_LETTERS = { self: "S", cross: "C", feature: "F", joint: "J", single: "1", "image-self": "I" };
/** Kinds of a DiT's sites (MM-DiT joint attention): their cells draw as a row of blocks, not a U. */
export const DIT_KINDS = ["joint", "single", "image-self"];
/** The streams of a DiT's blocks, in the order they run, and what the strip calls them. */
export const STREAM_NAMES = { double: "double-stream blocks", single: "single-stream blocks" };

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
 * How the cells draw: "blocks" for a DiT (any joint-attention kind), "unet" otherwise.
 * @param {Cell[]} cells
 * @returns {"blocks" | "unet"}
 */
export function stripLayout(cells) {
  return cells.some((c) => DIT_KINDS.includes(c.kind)) ? "blocks" : "unet";
}

/**
 * A DiT's blocks by stream (the block label's first word: "double 3" -> "double"), each stream's
 * blocks in execution order: [{stream, name, blocks: groupBlocks(...)}].
 * @param {Cell[]} cells
 */
export function groupStreams(cells) {
  const streams = [];
  for (const block of groupBlocks(cells)) {
    const stream = block.block.split(" ")[0];
    const last = streams[streams.length - 1];
    if (last && last.stream === stream) last.blocks.push(block);
    else streams.push({ stream, name: STREAM_NAMES[stream] || stream, blocks: [block] });
  }
  return streams;
}

/**
 * What a block's box says: its label in a UNet ("up 1"), its index within its stream in a DiT
 * (the stream's own label names it).
 * @param {string} block
 * @param {"blocks" | "unet"} layout
 */
export function blockLabel(block, layout) {
  const parts = block.split(" ");
  return layout === "blocks" && parts.length === 2 && parts[0] in STREAM_NAMES ? parts[1] : block;
}

/**
 * The kinds the cells hold, in KIND_NAMES order (the strip's legend).
 * @param {Cell[]} cells
 * @returns {string[]}
 */
export function kindsOf(cells) {
  const have = new Set(cells.map((c) => c.kind));
  return Object.keys(KIND_NAMES).filter((k) => have.has(k));
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
    const noun = kind === "feature" ? "modules" : DIT_KINDS.includes(kind) ? "blocks" : "layers";
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
