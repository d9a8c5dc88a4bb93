// Result zoom and pixel values (no DOM): nearest-neighbour scales for small images, the pixel under
// a pointer, the readout text.

/** Zoom factors the menu offers besides "fit". */
export const ZOOMS = [1, 2, 4, 8, 16];

/**
 * The scale that fits `count` images of `side` pixels side by side in `width` pixels (with `gap`
 * between them), at most `maxSide` pixels each: a whole number when enlarging (crisp pixels), a
 * fraction only when the image is larger than the room.
 */
export function fitScale(side, count, width, maxSide = 320, gap = 12) {
  if (!(side > 0) || !(count > 0)) return 1;
  const room = Math.max(1, Math.min(maxSide, (Math.max(width, 1) - gap * (count - 1)) / count));
  if (room >= side) return Math.max(1, Math.floor(room / side));
  return room / side;
}

/** The scale of a zoom choice ("fit" or a factor) for an image of `side` pixels. */
export function scaleOf(choice, side, count, width, maxSide) {
  if (choice === "fit" || choice === undefined || choice === null) return fitScale(side, count, width, maxSide);
  const n = Number(choice);
  return Number.isFinite(n) && n > 0 ? n : 1;
}

/** The pixel [x, y] of an image `natural` pixels wide shown `shown` pixels wide, at offset (ox, oy). */
export function pixelAt(ox, oy, natural, shown) {
  const f = natural / Math.max(shown, 1);
  const clamp = (v) => Math.min(natural - 1, Math.max(0, Math.floor(v * f)));
  return [clamp(ox), clamp(oy)];
}

/** A probe moved by an arrow key, kept inside a `side` x `side` image. */
export function movedProbe(probe, key, side) {
  const [x, y] = probe || [0, 0];
  const d = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] }[key];
  if (!d) return null;
  const clamp = (v) => Math.min(side - 1, Math.max(0, v));
  return [clamp(x + d[0]), clamp(y + d[1])];
}

/** "pixel (x, y): source rgb(r, g, b) · edit rgb(r, g, b)" for [label, [r, g, b] | null] pairs. */
export function readoutText(x, y, values) {
  const parts = values.filter(([, rgb]) => rgb).map(([label, rgb]) => `${label} rgb(${rgb[0]}, ${rgb[1]}, ${rgb[2]})`);
  return parts.length ? `pixel (${x}, ${y}): ${parts.join(" · ")}` : "";
}
