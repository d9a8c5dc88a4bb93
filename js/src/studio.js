// Studio panel front end, one frame: the controls (prompts with their changed words, the method
// menu and the chosen rule's parameters built from its declaration, sampling, P2P's settings,
// LocalBlend, a real image) beside the output (Run/Stop with progress, the results' state, large
// results with zoom and pixel values, the exports), and the tabs choosing what the Studio shows
// under the panel. Python validates every write and runs everything; this view only edits traits
// (committed on change) and sends actions.
// The parts live in ./studio/: layout, show (model -> controls), methods (the menu and parameter
// controls), results (images, zoom, pixel values), tabs, image (the real image), edits (controls
// -> traits), actions (buttons and keys), errors (beside their field); pure helpers: params,
// words, zoom, format.
//
// Every widget entry has the same shape, the factory `export default () => ({ initialize?, render })`:
// see ping.js for why.
import "../lib/common.css";
import "./studio.css";
import { listenForDownloads } from "../lib/download.js";
import { mountErrorBanner } from "../lib/error_banner.js";
import { mountView } from "../lib/mount.js";
import { attachActions } from "./studio/actions.js";
import { attachEdits } from "./studio/edits.js";
import { placed, showFieldError } from "./studio/errors.js";
import { attachDrop, showInputImage } from "./studio/image.js";
import { layout } from "./studio/layout.js";
import { showMethod } from "./studio/methods.js";
import { attachResults } from "./studio/results.js";
import {
  showBlend,
  showDiff,
  showResults,
  showResultState,
  showReweight,
  showSchedule,
  showStatus,
  showValues,
} from "./studio/show.js";
import { attachTabs, showTabs } from "./studio/tabs.js";
import { createView } from "./studio/view.js";

export { formatWeight } from "./studio/format.js";

/** @typedef {import("../lib/types.js").StudioTraits} StudioTraits  the synced traits (widgets/studio/panel.py) */

/** @param {{ model: import("../lib/types.js").Model<StudioTraits>, el: HTMLElement }} args */
function render({ model, el: host }) {
  const { el, ui, scope } = mountView(host, layout);
  const v = createView(model, el, ui, scope);
  scope.add(mountErrorBanner(model, ui.messages, { placed: (field) => placed(v, field) }));

  attachDrop(v, scope);
  attachEdits(v, scope);
  attachActions(v, scope);
  attachResults(v, scope);
  attachTabs(v, scope);
  const on = (events, fn) => scope.onModel(model, events, () => fn(v));
  on(["change:source", "change:target", "change:seed", "change:guidance", "change:kind", "change:baseline",
    "change:invert_method", "change:invert_choices", "change:blend_threshold", "change:model_name"], () => (
    showValues(v), showResultState(v)));
  on(["change:steps", "change:scheduler", "change:n_evals", "change:scheduler_choices"], () => (showValues(v), showSchedule(v), showResultState(v)));
  on(["change:method", "change:methods", "change:method_values", "change:combine_p2p"], () => (
    showMethod(v), showTabs(v), showInputImage(v), showFieldError(v), showStatus(v)));
  on(["change:section", "change:has_aligner", "change:has_timeline"], showTabs);
  on(["change:reweight", "change:blend_words", "change:windows", "change:input_name"], showResultState);
  on(["change:input_image", "change:input_name", "change:image_note"], () => (showInputImage(v), showMethod(v), showStatus(v)));
  on(["change:phase", "change:status", "change:progress", "change:spec_json"], showStatus);
  on(["change:windows", "change:has_timeline"], showSchedule);
  on(["change:target_words", "change:changed_words"], () => (showReweight(v), showBlend(v), showDiff(v)));
  on(["change:source_words", "change:blend_words"], showBlend);
  on("change:reweight", showReweight);
  on("change:images", showResults);
  on(["change:error", "change:error_field"], () => (
    showValues(v), showFieldError(v), showStatus(v)));

  showValues(v);
  showDiff(v);
  showSchedule(v);
  showReweight(v);
  showBlend(v);
  showResults(v);
  showInputImage(v);
  showFieldError(v);
  showStatus(v);
  return () => scope.dispose();
}

export default () => ({
  // downloads are answered once per model, not once per view
  initialize: ({ model }) => listenForDownloads(model),
  render,
});
