// Which words the studio offers first (no DOM): the words that differ between the prompts, then,
// on request, the rest; a word with a setting of its own always shows.

/**
 * `words` split into those shown now and those shown on request: the changed ones (and any in
 * `set`) first; every word when nothing changed or when `all` is asked for.
 * @param {string[]} words
 * @param {string[]} changed
 * @param {Set<string>|string[]} set words with a value of their own (a weight, a LocalBlend choice)
 * @param {boolean} all
 * @returns {{ order: string[], shown: Set<string>, hiddenCount: number }}
 */
export function offerWords(words, changed, set = [], all = false) {
  const first = new Set((changed || []).filter((w) => words.includes(w)));
  const chosen = new Set(set);
  if (first.size === 0) return { order: [...words], shown: new Set(words), hiddenCount: 0 };
  const order = [...words.filter((w) => first.has(w)), ...words.filter((w) => !first.has(w))];
  const shown = new Set(order.filter((w) => all || first.has(w) || chosen.has(w)));
  return { order, shown, hiddenCount: order.length - shown.size };
}

/** The text of the "more words" toggle. */
export function moreText(expanded, hiddenCount) {
  if (expanded) return "changed words only";
  return `all words (${hiddenCount} more)`;
}

/**
 * The changed words as parts of a sentence: [["text", ...] | ["del", word] | ["ins", word]].
 * @param {{source?: string[], target?: string[]}} changed
 */
export function diffParts(changed) {
  const src = (changed && changed.source) || [];
  const tgt = (changed && changed.target) || [];
  if (!src.length && !tgt.length) return [["text", "The prompts have the same words."]];
  const parts = [["text", "Changed: "]];
  src.forEach((w, i) => parts.push(...(i ? [["text", " "]] : []), ["del", w]));
  if (src.length && tgt.length) parts.push(["text", " → "]);
  else if (tgt.length) parts.push(["text", "added "]);
  tgt.forEach((w, i) => parts.push(...(i ? [["text", " "]] : []), ["ins", w]));
  if (!tgt.length) parts.push(["text", " (removed)"]);
  return parts;
}

/** The same sentence in plain words, for screen readers. */
export function diffSentence(changed) {
  const src = (changed && changed.source) || [];
  const tgt = (changed && changed.target) || [];
  if (!src.length && !tgt.length) return "The prompts have the same words.";
  if (src.length && tgt.length) return `Changed words: ${src.join(" ")} becomes ${tgt.join(" ")}.`;
  return src.length ? `Removed words: ${src.join(" ")}.` : `Added words: ${tgt.join(" ")}.`;
}
