// The SVG links between linked chips (and their wide, clickable twins), laid out from the chips'
// boxes, again whenever the stage changes size.
//
// Why links never cross chips: each row of chips stays on one line (the rows do not wrap; a
// long prompt scrolls the stage sideways, see aligner.css), so every source chip lies above the
// band between the two rows and every target chip below it. A prompt over several token segments
// (SD3: CLIP's, then T5's) has a pair of rows per segment, one under the other; a link joins
// tokens of one segment, so it stays in its own pair's band. A link is drawn as three pieces:
// straight down from its source chip to the top of the band, across the band, and straight down
// to its target chip. The vertical pieces stay inside their own chip's column (no other chip of a
// one-line row shares it) and the diagonal stays inside the band, where no chip is, so no link
// can pass through a chip at any width. Wrapping rows with links routed around them was the
// alternative; with many links the detours pile up in the gaps between lines and become unreadable.
//
// A link whose weight is not 1 carries its weight as a label on the band (text via textContent),
// so that a split weight (a source feeding several targets) is visible where the link is.
import { formatWeight } from "../../lib/alignment.js";
import { rowKey } from "./view.js";

/** @typedef {import("./view.js").AlignerView} AlignerView */

/** The middle of a box's top or bottom edge, relative to `base`. */
export function center(rect, base, edge) {
  return [rect.left + rect.width / 2 - base.left, (edge === "bottom" ? rect.bottom : rect.top) - base.top];
}

/** The band between a segment's two rows (stage coordinates): below every source chip of the
 * segment, above every target chip of it. Each segment's links stay in its own band. */
function band(v, base, segment) {
  const bottoms = v.visibleChips("source", segment).map((c) => c.getBoundingClientRect().bottom);
  const tops = v.visibleChips("target", segment).map((c) => c.getBoundingClientRect().top);
  const srcBox = v.rows.boxes[rowKey("source", segment)];
  const tgtBox = v.rows.boxes[rowKey("target", segment)];
  if (!srcBox || !tgtBox) return null;
  const src = srcBox.getBoundingClientRect();
  const tgt = tgtBox.getBoundingClientRect();
  const top = Math.max(src.bottom, ...bottoms) - base.top;
  const bottom = Math.min(tgt.top, ...tops) - base.top;
  return { top, bottom: Math.max(top, bottom) };
}

/** The points of the link from (x1, y1) (a source chip's bottom) to (x2, y2) (a target chip's top). */
export function linkPoints(x1, y1, x2, y2, b) {
  const top = Math.max(y1, b.top);
  const bottom = Math.max(top, Math.min(y2, b.bottom));
  return [
    [x1, y1],
    [x1, top],
    [x2, bottom],
    [x2, y2],
  ];
}

const fmt = (pts) => pts.map(([x, y]) => `${x.toFixed(1)},${y.toFixed(1)}`).join(" ");

function weightLabel(v, pts, i, j, w) {
  const [[xa, ya], [xb, yb]] = [pts[1], pts[2]];
  const t = 0.5;
  return v.el.svg(
    "text",
    {
      class: "p2p-aligner__linkweight",
      x: (xa + (xb - xa) * t + 4).toFixed(1),
      y: (ya + (yb - ya) * t + 4).toFixed(1),
      "data-i": i,
      "data-j": j,
    },
    [formatWeight(w)]
  );
}

function linkShapes(v, base, b, i, j, w) {
  const a = v.chipOf("source", i);
  const c = v.chipOf("target", j);
  if (!a || !c || !b || a.dataset.segment !== c.dataset.segment) return [];
  const [x1, y1] = center(a.getBoundingClientRect(), base, "bottom");
  const [x2, y2] = center(c.getBoundingClientRect(), base, "top");
  const pts = linkPoints(x1, y1, x2, y2, b);
  const line = v.el.svg("polyline", {
    points: fmt(pts),
    class: `p2p-aligner__link${w < 0 ? " p2p-aligner__link--negative" : ""}`,
    "stroke-width": (1.5 + 2.5 * Math.min(1, Math.abs(w))).toFixed(2),
    "data-i": i,
    "data-j": j,
  });
  const title = `${v.nameOf("source", i)} → ${v.nameOf("target", j)}, weight ${formatWeight(w)}: click to remove`;
  const hit = v.el.svg("polyline", { points: fmt(pts), class: "p2p-aligner__hit", "data-i": i, "data-j": j }, [
    v.el.svg("title", {}, [title]),
  ]);
  return Math.abs(w - 1) > 1e-9 ? [line, hit, weightLabel(v, pts, i, j, w)] : [line, hit];
}

/** Redraw every link from where the chips are now. */
export function layoutLinks(v) {
  v.linkLayer.replaceChildren();
  const base = v.stage.getBoundingClientRect();
  v.svg.setAttribute("width", String(Math.max(0, base.width)));
  v.svg.setAttribute("height", String(Math.max(0, base.height)));
  const bands = new Map(v.rows.segments.map((segment) => [segment, band(v, base, segment)]));
  const labels = [];
  for (const [i, j, w] of v.links()) {
    const shapes = linkShapes(v, base, bands.get(v.segmentOf("source", i)), i, j, w);
    if (shapes.length === 3) labels.push(shapes.pop());
    v.linkLayer.append(...shapes);
  }
  v.linkLayer.append(...labels); // labels above every line
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
