// The state one timeline view works on, shared by its drawing and its event handlers.
import { describeBoundary } from "../../lib/timeline.js";
import { readWindows, rowLabel, windowOf } from "./rows.js";

/**
 * @typedef {ReturnType<typeof createView>} TimelineView
 */

/**
 * @param {import("../../lib/types.js").Model<import("../../lib/types.js").TimelineTraits>} model
 * @param {import("../../lib/dom.js").Builder} el
 * @param {ReturnType<typeof import("./layout.js").layout>} ui
 * @param {{ announce(text: string): void }} announcer
 */
export function createView(model, el, ui, announcer) {
  const v = {
    model,
    el,
    doc: el.doc,
    ...ui,
    announcer,
    /** the drag in progress: {pointerId, key, row, edge, track, handle}, or null */
    drag: null,
    /** the windows being dragged (preview), or null */
    draft: null,
    /** the read-only bands changed during a drag: redraw when it ends */
    staleGrid: false,
    n: () => model.get("n_evals") || 0,
    timesteps: () => model.get("timesteps") || [],
    windows: () => readWindows(model),
    current: () => v.draft || v.windows(),
    windowOf: (w, row) => windowOf(w, row, v.n()),
    /** One `windows` write + save_changes; Python validates. */
    commit(next) {
      model.set("windows", next);
      model.save_changes();
    },
    /** Tell screen readers where an edge is now. */
    announceEdge(row, edge, w) {
      const [start, end] = v.windowOf(w, row);
      const where = describeBoundary(edge === "start" ? start : end, v.timesteps());
      if (row === "blend") announcer.announce(`LocalBlend starts at ${where}`);
      else announcer.announce(`${rowLabel(row)} ${edge === "start" ? "starts" : "ends"} at ${where}`);
    },
  };
  return v;
}
