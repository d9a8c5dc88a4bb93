// Keyboard on a focused handle: arrows one step, Page Up/Down a tenth of the run, Home/End the ends.
import { keyToBoundary } from "../../lib/timeline.js";
import { rowFromKey, withEdge } from "./rows.js";

/** @param {import("./view.js").TimelineView} v */
function onKeyDown(v, ev) {
  const target = ev.target;
  if (!(target instanceof Element) || !target.classList.contains("p2p-timeline__handle")) return;
  const row = rowFromKey(target.dataset.row);
  const edge = target.dataset.edge;
  const w = v.windows();
  const win = v.windowOf(w, row);
  if (!win) return;
  const next = keyToBoundary(ev.key, edge === "start" ? win[0] : win[1], v.n());
  if (next === null) return;
  ev.preventDefault();
  ev.stopPropagation();
  const updated = withEdge(w, row, edge, next, v.n());
  const after = v.windowOf(updated, row);
  if (after[0] === win[0] && after[1] === win[1]) return;
  v.commit(updated);
  v.announceEdge(row, edge, updated);
}

/**
 * @param {import("./view.js").TimelineView} v
 * @param {ReturnType<typeof import("../../lib/scope.js").createScope>} scope
 */
export function attachKeyboard(v, scope) {
  scope.on(v.root, "keydown", (ev) => onKeyDown(v, ev));
}
