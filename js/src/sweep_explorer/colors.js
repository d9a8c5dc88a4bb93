// The metric as colour (pure: no DOM): a perceptual scale (viridis) over the values shown, turned
// so that the better end of the metric is always the bright one, and how numbers are written.

// viridis at 0, 1/8, ..., 1 (matplotlib's table, sampled)
const STOPS = [
  [68, 1, 84],
  [71, 44, 122],
  [59, 81, 139],
  [44, 113, 142],
  [33, 144, 141],
  [39, 173, 129],
  [92, 200, 99],
  [170, 220, 50],
  [253, 231, 37],
];

/** The scale's colour at t in [0, 1] (clamped) as [r, g, b] bytes. */
export function colorAt(t) {
  const x = Math.min(1, Math.max(0, Number.isFinite(t) ? t : 0)) * (STOPS.length - 1);
  const k = Math.min(STOPS.length - 2, Math.floor(x));
  const f = x - k;
  return STOPS[k].map((a, c) => Math.round(a + (STOPS[k + 1][c] - a) * f));
}

/** "rgb(r, g, b)" of [r, g, b]. */
export function css([r, g, b]) {
  return `rgb(${r}, ${g}, ${b})`;
}

/**
 * A colour scale over `values` (null / NaN ignored).
 * @param {Array<number | null>} values
 * @param {"lower" | "higher"} [better] which end of the metric is the better edit
 * @returns {{min: number | null, max: number | null, better: string, t(v: number | null): number | null,
 *   color(v: number | null): string | null, worse: number | null, best: number | null}}
 *   `t`: position on the scale (1 = best); `color`: null for a missing value; `worse` / `best`:
 *   the values at the dull and at the bright end (what the legend writes at its two ends)
 */
export function colorScale(values, better = "higher") {
  const finite = values.filter((v) => typeof v === "number" && Number.isFinite(v));
  const min = finite.length ? Math.min(...finite) : null;
  const max = finite.length ? Math.max(...finite) : null;
  const lower = better === "lower";
  const t = (v) => {
    if (typeof v !== "number" || !Number.isFinite(v) || min === null) return null;
    const u = max > min ? (v - min) / (max - min) : 0.5;
    return lower ? 1 - u : u;
  };
  return {
    min,
    max,
    better: lower ? "lower" : "higher",
    t,
    color: (v) => (t(v) === null ? null : css(colorAt(t(v)))),
    worse: lower ? max : min,
    best: lower ? min : max,
  };
}

/** A CSS linear-gradient of the scale, dull (left) to bright (right), for the legend. */
export function gradientCss() {
  const stops = STOPS.map((rgb, k) => `${css(rgb)} ${((100 * k) / (STOPS.length - 1)).toFixed(1)}%`);
  return `linear-gradient(to right, ${stops.join(", ")})`;
}

/** A metric value as the widget writes it: 4 significant digits, exponents for the very large or small. */
export function formatValue(v) {
  if (typeof v !== "number" || !Number.isFinite(v)) return "n/a";
  if (v === 0) return "0";
  const a = Math.abs(v);
  if (a >= 1e5 || a < 1e-3) return v.toExponential(2);
  return String(Number(v.toPrecision(4)));
}
