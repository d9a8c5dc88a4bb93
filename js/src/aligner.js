// TokenAligner front end: source and target token chips, links drawn between the rows, a links
// list with editable weights, and a live heat map of M (the used rows and columns).
//
// Ways to link source token i to target token j (all end in one `links` write + save_changes):
// - pointer drag: press on a chip, drag onto a chip of the other row, release;
// - single pointer: click a chip (it is "picked"), then click a chip of the other row;
// - keyboard: Tab to a row, arrows to a chip, Enter/Space picks, Down/Up changes row, Enter/Space
//   places; Escape cancels; Delete removes the focused chip's links.
// Python validates every write; the view only renders model state (text via textContent).
// The parts live in ./aligner/: layout, view (state, link/unlink), chips, panels (list, M),
// lines (SVG), drag, keyboard, controls, draw.
//
// Every widget entry has the same shape, the factory `export default () => ({ initialize?, render })`:
// see ping.js for why.
import "../lib/common.css";
import "./aligner.css";
import { createAnnouncer } from "../lib/a11y.js";
import { mountErrorBanner } from "../lib/error_banner.js";
import { mountView } from "../lib/mount.js";
import { attachControls } from "./aligner/controls.js";
import { attachDrag } from "./aligner/drag.js";
import { renderAll, renderLinks, renderTokens, showKind, showPrompts } from "./aligner/draw.js";
import { attachKeyboard } from "./aligner/keyboard.js";
import { layout } from "./aligner/layout.js";
import { watchLayout } from "./aligner/lines.js";
import { createView } from "./aligner/view.js";

/** @typedef {import("../lib/types.js").AlignerTraits} AlignerTraits  the synced traits (widgets/aligner.py) */

let instances = 0;

/** @param {{ model: import("../lib/types.js").Model<AlignerTraits>, el: HTMLElement }} args */
function render({ model, el: host }) {
  const { el, ui, scope } = mountView(host, (b) => layout(b, `p2p-aligner-${++instances}`));
  const announcer = createAnnouncer(ui.root);
  scope.add(mountErrorBanner(model, ui.root));
  const v = createView(model, el, ui, announcer);

  attachControls(v, scope);
  attachKeyboard(v, scope);
  attachDrag(v, scope);
  scope.onModel(model, ["change:source_tokens", "change:target_tokens"], () => renderTokens(v));
  scope.onModel(model, "change:show_special", () => {
    v.specialBox.checked = v.showSpecial();
    renderTokens(v);
  });
  scope.onModel(model, "change:links", () => renderLinks(v));
  scope.onModel(model, ["change:source", "change:target"], () => showPrompts(v));
  scope.onModel(model, "change:kind", () => showKind(v));
  const relayout = watchLayout(v, scope);

  renderAll(v);
  relayout();
  return () => scope.dispose();
}

export default () => ({ render });
