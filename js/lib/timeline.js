// Pure logic of the AlphaTimeline (no DOM): snapping pixels to evaluation boundaries, moving
// window edges, ticks and descriptions.
//
// A run has n evaluations, indexed 0 (noisiest, left) to n - 1. A window [start, end) covers
// evaluations start .. end - 1; its edges are boundaries 0 .. n (boundary k sits between
// evaluation k - 1 and evaluation k).

/**
 * Snap an x offset inside a track of `width` pixels to the nearest boundary in [0, n].
 * @param {number} x
 * @param {number} width
 * @param {number} n
 */
export function pxToBoundary(x, width, n) {
  if (!(width > 0) || !(n > 0) || !Number.isFinite(x)) return 0;
  const k = Math.round((x / width) * n);
  return Math.max(0, Math.min(n, k));
}

/**
 * Percent offset of boundary k (for CSS `left`).
 * @param {number} k
 * @param {number} n
 */
export function boundaryToPercent(k, n) {
  return n > 0 ? (100 * k) / n : 0;
}

/**
 * Move one edge of a window to boundary k, kept inside [0, n] and never past the other edge.
 * @param {[number, number]} win
 * @param {"start"|"end"} edge
 * @param {number} k
 * @param {number} n
 * @returns {[number, number]}
 */
export function moveEdge(win, edge, k, n) {
  const [start, end] = win;
  const clamped = Math.max(0, Math.min(n, Math.round(k)));
  if (edge === "start") return [Math.min(clamped, end), end];
  return [start, Math.max(clamped, start)];
}

/**
 * Where a key press moves a boundary (Arrow keys 1 step, PageUp/PageDown a tenth of the run,
 * Home/End the ends). Returns null for other keys.
 * @param {string} key
 * @param {number} k current boundary
 * @param {number} n
 * @returns {number | null}
 */
export function keyToBoundary(key, k, n) {
  const big = Math.max(1, Math.round(n / 10));
  switch (key) {
    case "ArrowLeft":
    case "ArrowDown":
      return Math.max(0, k - 1);
    case "ArrowRight":
    case "ArrowUp":
      return Math.min(n, k + 1);
    case "PageDown":
      return Math.max(0, k - big);
    case "PageUp":
      return Math.min(n, k + big);
    case "Home":
      return 0;
    case "End":
      return n;
    default:
      return null;
  }
}

/**
 * Evaluation indices that get a tick label: about `maxTicks` of them, always the first and last.
 * @param {number} n
 * @param {number} [maxTicks]
 * @returns {number[]}
 */
export function tickIndices(n, maxTicks = 10) {
  if (!(n > 0)) return [];
  const step = Math.max(1, Math.ceil(n / Math.max(1, maxTicks)));
  const out = [];
  for (let i = 0; i < n; i += step) out.push(i);
  if (out[out.length - 1] !== n - 1) {
    if (n - 1 - out[out.length - 1] < step / 2 && out.length > 1) out.pop();
    out.push(n - 1);
  }
  return out;
}

/**
 * Text for a boundary: "step 40 (t = 181)" (the timestep of the evaluation that starts there), or
 * "end of the run" at n.
 * @param {number} k
 * @param {number[]} timesteps
 */
export function describeBoundary(k, timesteps) {
  const n = timesteps.length;
  if (k >= n) return `end of the run (after step ${n - 1})`;
  return `step ${k} (t = ${timesteps[k]})`;
}

/**
 * A deep copy of the windows object, words as [word, start, end] triples.
 * @param {{cross: number[], self_attn: number[], words?: Array<[string, number, number]>, blend_start: number}} w
 */
export function cloneWindows(w) {
  return {
    cross: [w.cross[0], w.cross[1]],
    self_attn: [w.self_attn[0], w.self_attn[1]],
    words: (w.words || []).map((r) => [r[0], r[1], r[2]]),
    blend_start: w.blend_start,
  };
}

/**
 * Replace the window of one row. `row` is "cross", "self_attn" or {word}.
 * @param {ReturnType<typeof cloneWindows>} windows
 * @param {string | {word: string}} row
 * @param {[number, number]} win
 */
export function withWindow(windows, row, win) {
  const next = cloneWindows(windows);
  if (row === "cross" || row === "self_attn") next[row] = [win[0], win[1]];
  else next.words = next.words.map((r) => (r[0] === row.word ? [r[0], win[0], win[1]] : r));
  return next;
}

/**
 * Add a per-word row (starting as a copy of the default cross window); no-op if present.
 * @param {ReturnType<typeof cloneWindows>} windows
 * @param {string} word
 */
export function addWordRow(windows, word) {
  const next = cloneWindows(windows);
  if (!next.words.some((r) => r[0] === word)) next.words.push([word, next.cross[0], next.cross[1]]);
  return next;
}

/**
 * Remove a per-word row.
 * @param {ReturnType<typeof cloneWindows>} windows
 * @param {string} word
 */
export function removeWordRow(windows, word) {
  const next = cloneWindows(windows);
  next.words = next.words.filter((r) => r[0] !== word);
  return next;
}
