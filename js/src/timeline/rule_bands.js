// A rule's windows as read-only bands (no DOM): the `rule_windows` trait checked and described.
// Python sets the trait from the rule's windows(n_evals) (AlphaTimeline.show_rule); a band covers
// evaluations [start, end), like the editable rows.
/** @typedef {{rule: string, what: string, start: number, end: number}} Band */

/**
 * The bands of the model's `rule_windows`, dropping malformed ones (Python validates; this only
 * keeps a bad value from breaking the drawing).
 * @param {unknown} value
 * @param {number} n evaluations of the run
 * @returns {Band[]}
 */
export function readBands(value, n) {
  if (!Array.isArray(value)) return [];
  const ok = (b) =>
    b &&
    typeof b.what === "string" &&
    Number.isInteger(b.start) &&
    Number.isInteger(b.end) &&
    b.start >= 0 &&
    b.start <= b.end &&
    b.end <= n;
  return value.filter(ok).map((b) => ({
    rule: typeof b.rule === "string" ? b.rule : "",
    what: b.what,
    start: b.start,
    end: b.end,
  }));
}

/** "MutualSelfAttention: mutual self-attention", or the description alone. @param {Band} band */
export function bandLabel(band) {
  return band.rule ? `${band.rule}: ${band.what}` : band.what;
}

/**
 * The text alternative of a band: what, its first and last step with their timesteps, read-only.
 * @param {Band} band
 * @param {number[]} timesteps
 */
export function describeBand(band, timesteps) {
  const label = bandLabel(band);
  const count = band.end - band.start;
  if (count <= 0) return `${label}: no steps (read-only)`;
  const t = (k) => (k < timesteps.length ? ` (t = ${timesteps[k]})` : "");
  const last = band.end - 1;
  const span = count === 1 ? `step ${band.start}${t(band.start)}` : `steps ${band.start}${t(band.start)} to ${last}${t(last)}`;
  return `${label}: ${span}, ${count} of ${timesteps.length} (read-only)`;
}
