// The block probe's pure parts (no DOM): bars grouped by block kind, their heights, the selection
// toggle and the text a bar reads as. Python (widgets/block_probe.py) checks every write of
// `selected`; these helpers only compute what the page shows and the list it writes.

/**
 * @typedef {{ label: string, place: "double" | "single", depth: number, score: number }} Block
 * one record of the `blocks` trait (BlockScore.to_dict in engine/probe.py)
 * @typedef {{ place: string, title: string, items: Array<Block & { index: number }> }} Group
 */

const TITLES = { double: "double-stream blocks", single: "single-stream blocks" };

/**
 * The bars by kind, double-stream first, each group in depth order; `index` is the block's place
 * in `blocks` (what `selected` holds). Empty groups are left out.
 * @param {Block[]} blocks
 * @returns {Group[]}
 */
export function groupBlocks(blocks) {
  const groups = [];
  for (const place of ["double", "single"]) {
    const items = (blocks || [])
      .map((b, index) => ({ ...b, index }))
      .filter((b) => b.place === place)
      .sort((a, b) => a.depth - b.depth);
    if (items.length) groups.push({ place, title: TITLES[place], items });
  }
  return groups;
}

/**
 * Each block's bar height as a fraction of the tallest (scores over the highest one); all zeros
 * when no block scores above 0.
 * @param {Block[]} blocks
 * @returns {number[]}
 */
export function barHeights(blocks) {
  const scores = (blocks || []).map((b) => (Number.isFinite(b.score) && b.score > 0 ? b.score : 0));
  const top = Math.max(0, ...scores);
  return scores.map((s) => (top > 0 ? s / top : 0));
}

/**
 * `selected` with `index` added or removed, sorted, without repeats.
 * @param {number[]} selected
 * @param {number} index
 * @returns {number[]}
 */
export function toggleIndex(selected, index) {
  const set = new Set(selected || []);
  if (set.has(index)) set.delete(index);
  else set.add(index);
  return [...set].sort((a, b) => a - b);
}

/**
 * A score as text: "0", three significant digits, or an exponent for very small or large values.
 * @param {number} score
 */
export function formatScore(score) {
  if (!Number.isFinite(score)) return "?";
  if (score === 0) return "0";
  const a = Math.abs(score);
  if (a < 1e-3 || a >= 1e4) return score.toExponential(2);
  return String(Number(score.toPrecision(3)));
}

/**
 * What a bar reads as (its hover text and accessible name).
 * @param {Block} block
 * @param {boolean} [selected]
 */
export function describeBlock(block, selected = false) {
  return `${block.label}: score ${formatScore(block.score)}${selected ? " (selected)" : ""}`;
}

/**
 * The selection's summary line.
 * @param {Block[]} blocks
 * @param {number[]} selected
 */
export function selectionText(blocks, selected) {
  const labels = (selected || []).filter((i) => blocks && blocks[i]).map((i) => blocks[i].label);
  return labels.length ? `selected: ${labels.join(", ")}` : "no block selected: click bars to select them";
}
