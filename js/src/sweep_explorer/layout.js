// The explorer's fixed parts: pickers (x, y, colour, cell size), the filters, the legend, the board
// (corner, column labels, row labels, the scrolled cells), the tooltip, a status line.
import { selectOf } from "../../lib/dom.js";

/** @param {import("../../lib/dom.js").Builder} el */
function pickers(el) {
  const xSelect = el("select", { class: "p2p-btn p2p-sweep__x", "aria-label": "column laid out across" });
  const ySelect = el("select", { class: "p2p-btn p2p-sweep__y", "aria-label": "column laid out down" });
  const metricSelect = el("select", { class: "p2p-btn p2p-sweep__metric", "aria-label": "metric shown as colour" });
  const sizeInput = el("input", {
    class: "p2p-sweep__size",
    type: "range",
    min: "24",
    max: "256",
    step: "8",
    "aria-label": "cell size",
  });
  const box = el("div", { class: "p2p-sweep__bar" }, [
    el("label", {}, ["across ", xSelect]),
    el("label", {}, ["down ", ySelect]),
    el("label", {}, ["colour ", metricSelect]),
    el("label", {}, ["size ", sizeInput]),
  ]);
  return { box, xSelect, ySelect, metricSelect, sizeInput };
}

/** @param {import("../../lib/dom.js").Builder} el */
function legend(el) {
  const bar = el("span", { class: "p2p-sweep__ramp", "aria-hidden": "true" });
  const worse = el("span", { class: "p2p-sweep__worse" });
  const best = el("span", { class: "p2p-sweep__best" });
  const name = el("span", { class: "p2p-sweep__legend-name" });
  const note = el("span", { class: "p2p-sweep__legend-note" });
  const box = el("div", { class: "p2p-sweep__legend", role: "group", "aria-label": "colour legend" }, [
    name,
    worse,
    bar,
    best,
    note,
  ]);
  return { box, bar, worse, best, name, note };
}

/** @param {import("../../lib/dom.js").Builder} el */
function board(el) {
  const axesTitle = el("div", { class: "p2p-sweep__axes" });
  const corner = el("div", { class: "p2p-sweep__corner" });
  const colInner = el("div", { class: "p2p-sweep__labels-inner" });
  const rowInner = el("div", { class: "p2p-sweep__labels-inner" });
  const cols = el("div", { class: "p2p-sweep__cols", "aria-hidden": "true" }, [colInner]);
  const rowsBox = el("div", { class: "p2p-sweep__rows", "aria-hidden": "true" }, [rowInner]);
  const cells = el("div", { class: "p2p-sweep__cells", role: "group" });
  const scroll = el("div", { class: "p2p-sweep__scroll", tabIndex: -1 }, [cells]);
  const box = el("div", { class: "p2p-sweep__board" }, [axesTitle, corner, cols, rowsBox, scroll]);
  return { box, axesTitle, colInner, rowInner, scroll, cells };
}

/** @param {import("../../lib/dom.js").Builder} el */
export function layout(el) {
  const { box: barBox, ...pickerParts } = pickers(el);
  const { box: legendBox, ...legendParts } = legend(el);
  const { box: boardBox, ...boardParts } = board(el);
  const filters = el("div", { class: "p2p-sweep__filters", role: "group", "aria-label": "filters" });
  const summary = el("div", { class: "p2p-sweep__summary" });
  const tip = el("div", { class: "p2p-sweep__tip", role: "tooltip", hidden: true });
  const status = el("div", { class: "p2p-sweep__status", role: "status", "aria-live": "polite" });
  const empty = el("p", { class: "p2p-sweep__empty", text: "No rows match these filters.", hidden: true });
  const root = el(
    "div",
    { class: "p2p-sweep p2p-root", role: "group", "aria-label": "sweep explorer", "data-lm-suppress-shortcuts": "true" },
    [barBox, filters, legendBox, summary, boardBox, empty, tip, status]
  );
  return { root, ...pickerParts, legend: legendBox, ...legendParts, ...boardParts, filters, summary, tip, status, empty };
}

/** A <select> of the axis columns (value: the column name). */
export function axisOptions(el, select, axes) {
  const want = axes.map((a) => [a.name, a.label]);
  const have = [...select.options].map((o) => [o.value, o.textContent]);
  if (JSON.stringify(want) !== JSON.stringify(have)) select.replaceChildren(...selectOf(el, {}, want).children);
}
