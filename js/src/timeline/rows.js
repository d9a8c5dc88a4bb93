// The rows of the timeline and their windows (no DOM): "cross", "self_attn", "blend" and one
// {word} row per overridden word. A row's key (data-row) is its name, or "word:<word>".
import { cloneWindows, moveEdge, withWindow } from "../../lib/timeline.js";

/** @typedef {"cross" | "self_attn" | "blend" | {word: string}} Row */

/** @param {Row} row */
export const rowKey = (row) => (typeof row === "string" ? row : `word:${row.word}`);

/** @param {string} key @returns {Row} */
export function rowFromKey(key) {
  if (key === "cross" || key === "self_attn" || key === "blend") return key;
  return { word: key.slice("word:".length) };
}

/** @param {Row} row */
export function rowLabel(row) {
  if (row === "cross") return "cross-attention (default)";
  if (row === "self_attn") return "self-attention";
  if (row === "blend") return "LocalBlend start";
  return `word “${row.word}”`;
}

/** Rows top to bottom: the default, one per word, self-attention, LocalBlend. */
export function rowsOf(w) {
  return ["cross", ...w.words.map((r) => ({ word: r[0] })), "self_attn", "blend"];
}

/** The model's windows, with defaults for anything missing. */
export function readWindows(model) {
  const w = model.get("windows") || {};
  return cloneWindows({
    cross: w.cross || [0, 0],
    self_attn: w.self_attn || [0, 0],
    words: w.words || [],
    blend_start: Number.isInteger(w.blend_start) ? w.blend_start : 0,
  });
}

/**
 * [start, end] of a row (LocalBlend: [blend_start, n]); null for a word without a row.
 * @param {Row} row
 * @param {number} n
 */
export function windowOf(w, row, n) {
  if (row === "cross" || row === "self_attn") return w[row];
  if (row === "blend") return [w.blend_start, n];
  const found = w.words.find((r) => r[0] === row.word);
  return found ? [found[1], found[2]] : null;
}

/**
 * The windows with one edge of one row moved to boundary k.
 * @param {Row} row
 * @param {"start" | "end"} edge
 */
export function withEdge(w, row, edge, k, n) {
  if (row === "blend") return { ...cloneWindows(w), blend_start: Math.max(0, Math.min(n, k)) };
  return withWindow(w, row, moveEdge(windowOf(w, row, n), edge, k, n));
}

/** Attribute selectors with word text inside: escape quotes and backslashes. */
export function cssEscape(value) {
  return String(value).replace(/["\\]/g, "\\$&");
}
