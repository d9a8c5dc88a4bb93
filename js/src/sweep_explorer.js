// SweepExplorer front end: the rows of a sweep as an image grid laid out by two chosen columns,
// a metric as colour, hover for the numbers, click to open the edit in the Studio.
//
// Python computes the grid (the `grid` trait: cells with the means of every metric) and validates
// every write (x, y, metric, filters, cell_size). Thumbnails are PNG bytes in binary buffers,
// asked for only for the cells built for the viewport (./sweep_explorer/board.js) and kept per
// model (./sweep_explorer/thumbs.js), so a grid of thousands of cells stays responsive.
// Parts: geometry and colors (pure), tooltip (pure), thumbs, layout, view, board, controls, hover.
//
// Every widget entry has the same shape, the factory `export default () => ({ initialize?, render })`:
// see ping.js for why.
import "../lib/common.css";
import "./sweep_explorer.css";
import { mountErrorBanner } from "../lib/error_banner.js";
import { mountView } from "../lib/mount.js";
import { paintVisible, relayout, repaintBuilt } from "./sweep_explorer/board.js";
import { attachControls, showFilters, showLegend, showPickers, showSummary } from "./sweep_explorer/controls.js";
import { attachHover, hideTip } from "./sweep_explorer/hover.js";
import { layout } from "./sweep_explorer/layout.js";
import { createThumbs } from "./sweep_explorer/thumbs.js";
import { createView, rescale } from "./sweep_explorer/view.js";

function scheduleScroll(v) {
  if (v.raf !== null) return;
  const frame = v.win.requestAnimationFrame || ((fn) => v.win.setTimeout(fn, 16));
  v.raf = frame(() => {
    v.raf = null;
    paintVisible(v);
  });
}

/**
 * @param {{ model: import("../lib/types.js").Model<any>, el: HTMLElement }} args
 * @param {ReturnType<typeof createThumbs>} thumbs
 */
function render({ model, el: host }, thumbs) {
  const { el, ui, scope } = mountView(host, layout);
  scope.add(mountErrorBanner(model, ui.root));
  const v = createView(model, el, ui, thumbs);
  scope.add(() => {
    if (v.raf !== null) (v.win.cancelAnimationFrame || v.win.clearTimeout).call(v.win, v.raf);
    v.raf = null;
  });
  const regrid = () => {
    hideTip(v);
    rescale(v);
    showLegend(v);
    showSummary(v);
    relayout(v);
  };
  const recolour = () => {
    rescale(v);
    showLegend(v);
    repaintBuilt(v);
  };
  scope.onModel(model, ["change:axes", "change:metrics", "change:x", "change:y", "change:metric", "change:cell_size"], () =>
    showPickers(v)
  );
  scope.onModel(model, ["change:axes", "change:filters", "change:x", "change:y"], () => showFilters(v));
  scope.onModel(model, ["change:grid", "change:cell_size"], regrid);
  scope.onModel(model, ["change:metric", "change:metrics"], recolour);
  scope.onModel(model, ["change:selected"], () => repaintBuilt(v));
  scope.onModel(model, ["change:status", "change:n_rows"], () => showSummary(v));
  scope.add(thumbs.subscribe((rows) => repaintBuilt(v, rows)));
  scope.on(v.scroll, "scroll", () => scheduleScroll(v));
  if (typeof v.win.ResizeObserver === "function") {
    const observer = new v.win.ResizeObserver(() => scheduleScroll(v));
    observer.observe(v.scroll);
    scope.add(() => observer.disconnect());
  }
  attachControls(v, scope);
  attachHover(v, scope);

  showPickers(v);
  showFilters(v);
  regrid();
  return () => scope.dispose();
}

export default () => {
  const thumbs = createThumbs();
  return {
    initialize: ({ model }) => thumbs.listen(model),
    render: (args) => render(args, thumbs),
  };
};
