// Pure logic of the TokenAligner (no DOM): links, weight splitting, the matrix M, token rows.
//
// A link is [source position, target position, weight]. Positions are token positions as the
// engine counts them (BOS is 0). Links are kept sorted by (source, target) without duplicates,
// which is also the canonical order Python stores them in.

const EVEN_TOLERANCE = 1e-6;

/** @typedef {[number, number, number]} Link */

/**
 * Copy and sort links by (source, target).
 * @param {Link[]} links
 * @returns {Link[]}
 */
export function sortLinks(links) {
  return (links || []).map((l) => [l[0], l[1], l[2]]).sort((a, b) => a[0] - b[0] || a[1] - b[1]);
}

/**
 * True when the weights are one equal share each (1/k), i.e. an untouched even split.
 * @param {number[]} weights
 */
export function isEvenSplit(weights) {
  if (weights.length === 0) return true;
  const share = 1 / weights.length;
  return weights.every((w) => Math.abs(w - share) < EVEN_TOLERANCE);
}

/** @param {Link[]} links @param {number} i */
function weightsOfSource(links, i) {
  return links.filter((l) => l[0] === i).map((l) => l[2]);
}

/**
 * Link source token i to target token j.
 *
 * By default a source that feeds several targets splits its weight evenly (source "orange" onto
 * "big" and "tabby" gives 0.5 each): when the source's current links are an even split, all of
 * them (the new one included) get 1/(k+1). When the user has edited the weights, those stay and
 * the new link gets 1/(k+1). Linking an existing pair changes nothing.
 * @param {Link[]} links
 * @param {number} i
 * @param {number} j
 * @returns {{links: Link[], added: boolean}}
 */
export function addLink(links, i, j) {
  const current = sortLinks(links);
  if (current.some((l) => l[0] === i && l[1] === j)) return { links: current, added: false };
  const even = isEvenSplit(weightsOfSource(current, i));
  const k = current.filter((l) => l[0] === i).length;
  const share = 1 / (k + 1);
  const next = current.map((l) => (l[0] === i && even ? [l[0], l[1], share] : l));
  next.push([i, j, share]);
  return { links: sortLinks(next), added: true };
}

/**
 * Remove the link i -> j. If the source's weights were an even split, the remaining links of
 * that source are split evenly again; edited weights are left alone.
 * @param {Link[]} links
 * @param {number} i
 * @param {number} j
 * @returns {{links: Link[], removed: boolean}}
 */
export function removeLink(links, i, j) {
  const current = sortLinks(links);
  if (!current.some((l) => l[0] === i && l[1] === j)) return { links: current, removed: false };
  const even = isEvenSplit(weightsOfSource(current, i));
  const rest = current.filter((l) => !(l[0] === i && l[1] === j));
  const k = rest.filter((l) => l[0] === i).length;
  const next = rest.map((l) => (l[0] === i && even && k > 0 ? [l[0], l[1], 1 / k] : l));
  return { links: next, removed: true };
}

/**
 * Remove every link that touches token `pos` on `side` ("source" or "target").
 * @param {Link[]} links
 * @param {"source"|"target"} side
 * @param {number} pos
 * @returns {{links: Link[], removed: number}}
 */
export function removeLinksOf(links, side, pos) {
  let current = sortLinks(links);
  const col = side === "source" ? 0 : 1;
  const doomed = current.filter((l) => l[col] === pos);
  for (const l of doomed) current = removeLink(current, l[0], l[1]).links;
  return { links: current, removed: doomed.length };
}

/**
 * Parse a weight typed by the user. Returns null when it is not a finite number.
 * @param {unknown} value
 * @returns {number | null}
 */
export function parseWeight(value) {
  if (typeof value === "number") return Number.isFinite(value) ? value : null;
  if (typeof value !== "string" || value.trim() === "") return null;
  const n = Number(value.trim());
  return Number.isFinite(n) ? n : null;
}

/**
 * Set the weight of link i -> j (no-op if the link does not exist).
 * @param {Link[]} links
 * @param {number} i
 * @param {number} j
 * @param {number} w
 * @returns {Link[]}
 */
export function setWeight(links, i, j, w) {
  return sortLinks(links).map((l) => (l[0] === i && l[1] === j ? [i, j, w] : l));
}

/**
 * The used block of M: rows = source positions [0, nSrc), columns = target positions [0, nTgt).
 * Mirrors the engine's Mapper.from_links(include_special=True) on that block: BOS feeds BOS and
 * EOS feeds EOS unless a link already feeds that target column (`bos: false`: the prompts have no
 * BOS, as T5's on Flux: position 0 is a word).
 * @param {Link[]} links
 * @param {number} nSrc  source tokens including BOS and EOS
 * @param {number} nTgt  target tokens including BOS and EOS
 * @param {{includeSpecial?: boolean, bos?: boolean}} [opts]
 * @returns {number[][]} nSrc x nTgt
 */
export function matrixFromLinks(links, nSrc, nTgt, opts = {}) {
  const includeSpecial = opts.includeSpecial !== false;
  const m = Array.from({ length: nSrc }, () => new Array(nTgt).fill(0));
  for (const [i, j, w] of links || []) {
    if (i >= 0 && i < nSrc && j >= 0 && j < nTgt) m[i][j] += w;
  }
  if (includeSpecial && nSrc > 0 && nTgt > 0) {
    const fed = (j) => m.some((row) => row[j] !== 0);
    if (opts.bos !== false && !fed(0)) m[0][0] = 1;
    const eosT = nTgt - 1;
    if (eosT > 0 && !fed(eosT)) m[nSrc - 1][eosT] = 1;
  }
  return m;
}

/**
 * Tokens to display: BOS/EOS hidden unless `showSpecial`.
 * @template {{special?: string}} T
 * @param {T[]} tokens
 * @param {boolean} showSpecial
 * @returns {T[]}
 */
export function visibleTokens(tokens, showSpecial) {
  return (tokens || []).filter((t) => showSpecial || !t.special);
}

/**
 * Group consecutive tokens of the same word (a multi-token word becomes one group).
 * @template {{word: number, word_text?: string, special?: string}} T
 * @param {T[]} tokens
 * @returns {{word: number, text: string, tokens: T[]}[]}
 */
export function groupWords(tokens) {
  const groups = [];
  for (const t of tokens || []) {
    const last = groups[groups.length - 1];
    if (last && t.word >= 0 && last.word === t.word) last.tokens.push(t);
    else groups.push({ word: t.word, text: t.word_text || "", tokens: [t] });
  }
  return groups;
}

/**
 * Short label of a token chip: BOS/EOS get a readable name, the rest their decoded text.
 * @param {{text: string, special?: string}} token
 */
export function chipLabel(token) {
  if (token.special === "bos") return "BOS";
  if (token.special === "eos") return "EOS";
  return token.text;
}

/**
 * Weight as short text: "1", "0.5", "0.33", "-0.25".
 * @param {number} w
 */
export function formatWeight(w) {
  if (!Number.isFinite(w)) return String(w);
  const r = Math.round(w * 100) / 100;
  return String(Object.is(r, -0) ? 0 : r);
}

/**
 * Heat-map colour of a weight: blue for positive, red for negative, opacity ~ |w| / max.
 * @param {number} w
 * @param {number} [max]
 */
export function heatColor(w, max = 1) {
  if (!w) return "transparent";
  const a = Math.min(1, Math.abs(w) / (max || 1));
  const alpha = Math.round((0.12 + 0.88 * a) * 1000) / 1000;
  return w > 0 ? `rgba(25, 118, 210, ${alpha})` : `rgba(211, 47, 47, ${alpha})`;
}
