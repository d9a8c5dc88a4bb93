// AlphaTimeline front end: rows of [start, end) windows over the scheduler's real evaluations
// (noisiest on the left), with timestep labels, draggable and keyboard-operable edges that snap
// to steps, per-word rows, presets, and a playhead; below them, read-only bands where an edit rule
// acts (`rule_windows`, from the rule's windows(n_evals) in Python).
//
// Every change is one `windows` write + save_changes (presets are a message); Python validates.
// The parts live in ./timeline/: layout, rows (windows per row), rule_bands, draw, drag, keyboard,
// actions.
//
// Every widget entry has the same shape, the factory `export default () => ({ initialize?, render })`:
// see ping.js for why.
import "../lib/common.css";
import "./timeline.css";
import { createAnnouncer } from "../lib/a11y.js";
import { mountErrorBanner } from "../lib/error_banner.js";
import { mountView } from "../lib/mount.js";
import { attachActions } from "./timeline/actions.js";
import { attachDrag } from "./timeline/drag.js";
import { renderAll, renderGrid, renderPlayhead } from "./timeline/draw.js";
import { attachKeyboard } from "./timeline/keyboard.js";
import { layout } from "./timeline/layout.js";
import { createView } from "./timeline/view.js";

/** @typedef {import("../lib/types.js").TimelineTraits} TimelineTraits  the synced traits (widgets/timeline.py) */

/** @param {{ model: import("../lib/types.js").Model<TimelineTraits>, el: HTMLElement }} args */
function render({ model, el: host }) {
  const { el, ui, scope } = mountView(host, layout);
  const announcer = createAnnouncer(ui.root);
  scope.add(mountErrorBanner(model, ui.root));
  const v = createView(model, el, ui, announcer);

  attachKeyboard(v, scope);
  attachDrag(v, scope);
  attachActions(v, scope);
  scope.onModel(model, "change:windows", () => {
    if (!v.drag) renderGrid(v);
  });
  scope.onModel(model, ["change:timesteps", "change:n_evals", "change:words"], () => renderGrid(v));
  scope.onModel(model, "change:rule_windows", () => {
    if (v.drag) v.staleGrid = true; // redrawn when the drag ends: a redraw now would drop the dragged handle
    else renderGrid(v);
  });
  scope.onModel(model, "change:playhead", () => renderPlayhead(v));
  scope.onModel(model, "change:target", () => renderAll(v));

  renderAll(v);
  return () => scope.dispose();
}

export default () => ({ render });
