// The SVG lines between linked chips (and their wide, clickable twins), laid out from the chips'
// boxes, again whenever the stage changes size.
import { formatWeight } from "../../lib/alignment.js";

/** @typedef {import("./view.js").AlignerView} AlignerView */

/** The middle of a box's top or bottom edge, relative to `base`. */
export function center(rect, base, edge) {
  return [rect.left + rect.width / 2 - base.left, (edge === "bottom" ? rect.bottom : rect.top) - base.top];
}

function linkLines(v, base, i, j, w) {
  const a = v.chipOf("source", i);
  const b = v.chipOf("target", j);
  if (!a || !b) return [];
  const [x1, y1] = center(a.getBoundingClientRect(), base, "bottom");
  const [x2, y2] = center(b.getBoundingClientRect(), base, "top");
  const coords = { x1, y1, x2, y2 };
  const line = v.el.svg("line", {
    ...coords,
    class: `p2p-aligner__link${w < 0 ? " p2p-aligner__link--negative" : ""}`,
    "stroke-width": (1.5 + 2.5 * Math.min(1, Math.abs(w))).toFixed(2),
    "data-i": i,
    "data-j": j,
  });
  const title = `${v.nameOf("source", i)} → ${v.nameOf("target", j)}, weight ${formatWeight(w)}: click to remove`;
  const hit = v.el.svg("line", { ...coords, class: "p2p-aligner__hit", "data-i": i, "data-j": j }, [
    v.el.svg("title", {}, [title]),
  ]);
  return [line, hit];
}

/** Redraw every link line from where the chips are now. */
export function layoutLinks(v) {
  v.linkLayer.replaceChildren();
  const base = v.stage.getBoundingClientRect();
  v.svg.setAttribute("width", String(Math.max(0, base.width)));
  v.svg.setAttribute("height", String(Math.max(0, base.height)));
  for (const [i, j, w] of v.links()) v.linkLayer.append(...linkLines(v, base, i, j, w));
}

/**
 * Lay the lines out again (once per frame at most) whenever the stage resizes.
 * @param {AlignerView} v
 * @param {ReturnType<typeof import("../../lib/scope.js").createScope>} scope
 * @returns {() => void} relayout: schedule a layout now
 */
export function watchLayout(v, scope) {
  let pending = false;
  const relayout = () => {
    if (pending) return;
    pending = true;
    const later = typeof requestAnimationFrame === "function" ? requestAnimationFrame : (cb) => setTimeout(cb, 16);
    later(() => {
      pending = false;
      if (!scope.disposed) layoutLinks(v);
    });
  };
  const resizeObserver = typeof ResizeObserver === "function" ? new ResizeObserver(relayout) : null;
  if (resizeObserver) {
    resizeObserver.observe(v.stage);
    scope.add(() => resizeObserver.disconnect());
  }
  return relayout;
}
