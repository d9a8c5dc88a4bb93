// The state one explorer view works on: the model, its nodes, the colour scale of the metric
// shown, the grid's geometry and the cells built for the viewport.
import { colorScale } from "./colors.js";

/** @typedef {ReturnType<typeof createView>} View */

const EMPTY_GRID = { x: "", y: "", xs: [], ys: [], averaged: [], fixed: [], cells: [] };

/**
 * @param {import("../../lib/types.js").Model<any>} model
 * @param {import("../../lib/dom.js").Builder} el
 * @param {ReturnType<typeof import("./layout.js").layout>} ui
 * @param {ReturnType<typeof import("./thumbs.js").createThumbs>} thumbs
 */
export function createView(model, el, ui, thumbs) {
  const doc = el.doc;
  const v = {
    model,
    el,
    doc,
    win: doc.defaultView || globalThis,
    ...ui,
    thumbs,
    /** @type {import("./geometry.js").Geometry | null} */
    geo: null,
    /** @type {Map<number, import("./tooltip.js").Cell>} cells by j * nx + i */
    byIndex: new Map(),
    /** @type {Map<number, HTMLElement>} the cells built now, by j * nx + i */
    built: new Map(),
    range: null,
    labelKey: "",
    scale: colorScale([]),
    /** pending scroll repaint (animation frame id) or null */
    raf: null,
    /** @returns {import("./tooltip.js").Grid} */
    grid: () => {
      const g = model.get("grid");
      return g && Array.isArray(g.cells) ? g : EMPTY_GRID;
    },
    /** A column's label as Python named it. */
    label: (column) => {
      const axis = (model.get("axes") || []).find((a) => a.name === column);
      return axis ? axis.label : column;
    },
    metricIndex: () => (model.get("metrics") || []).findIndex((m) => m.name === model.get("metric")),
    /** Set traits and save once. */
    commit(changes) {
      for (const [k, val] of Object.entries(changes)) model.set(k, val);
      model.save_changes();
    },
  };
  return v;
}

/** The colour scale of the metric shown, over the cells of the grid. @param {View} v */
export function rescale(v) {
  const k = v.metricIndex();
  const metric = (v.model.get("metrics") || [])[k];
  const values = k >= 0 ? v.grid().cells.map((c) => c.values[k]) : [];
  v.scale = colorScale(values, metric ? metric.better : "higher");
}
