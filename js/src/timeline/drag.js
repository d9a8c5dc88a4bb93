// Dragging a handle: the edge snaps to steps and previews while moving; one save on release.
import { pxToBoundary } from "../../lib/timeline.js";
import { rowFromKey, withEdge } from "./rows.js";
import { previewRow, renderGrid } from "./draw.js";

/** @typedef {import("./view.js").TimelineView} TimelineView */

function startDrag(v, ev) {
  const target = ev.target;
  if (!(target instanceof Element) || v.drag) return;
  const handle = target.closest(".p2p-timeline__handle");
  if (!handle || (ev.button !== undefined && ev.button !== 0)) return;
  ev.stopPropagation();
  ev.preventDefault();
  handle.focus();
  v.drag = {
    pointerId: ev.pointerId,
    key: handle.dataset.row,
    row: rowFromKey(handle.dataset.row),
    edge: handle.dataset.edge,
    track: handle.closest(".p2p-timeline__track"),
    handle,
  };
  handle.classList.add("p2p-timeline__handle--dragging");
  try {
    handle.setPointerCapture(ev.pointerId);
  } catch (_) {
    /* synthetic events: bubbling still works */
  }
}

function moveDrag(v, ev) {
  const drag = v.drag;
  if (!drag || ev.pointerId !== drag.pointerId) return;
  ev.preventDefault();
  // handles sit at k/n of the padding box: measure the same box (border excluded)
  const rect = drag.track.getBoundingClientRect();
  const width = drag.track.clientWidth || rect.width;
  const k = pxToBoundary(ev.clientX - rect.left - (drag.track.clientLeft || 0), width, v.n());
  const next = withEdge(v.current(), drag.row, drag.edge, k, v.n());
  const before = v.windowOf(v.current(), drag.row);
  const after = v.windowOf(next, drag.row);
  if (before[0] === after[0] && before[1] === after[1]) return;
  v.draft = next;
  previewRow(v, drag.row, next);
}

/** Stop dragging (pointer capture released); the draft is left to the caller. */
export function endDrag(v) {
  const drag = v.drag;
  if (!drag) return;
  drag.handle.classList.remove("p2p-timeline__handle--dragging");
  try {
    if (drag.handle.hasPointerCapture && drag.handle.hasPointerCapture(drag.pointerId)) {
      drag.handle.releasePointerCapture(drag.pointerId);
    }
  } catch (_) {
    /* already released */
  }
  v.drag = null;
  if (v.staleGrid) {
    v.staleGrid = false;
    renderGrid(v);
  }
}

function finishDrag(v, ev) {
  if (!v.drag || ev.pointerId !== v.drag.pointerId) return;
  const { row, edge } = v.drag;
  const next = v.draft;
  endDrag(v);
  v.draft = null;
  if (next) {
    v.commit(next); // change:windows re-renders from the model
    v.announceEdge(row, edge, next);
  }
}

function cancelDrag(v, ev) {
  if (!v.drag || ev.pointerId !== v.drag.pointerId) return;
  endDrag(v);
  v.draft = null;
  renderGrid(v);
  v.announcer.announce("drag cancelled");
}

/**
 * @param {TimelineView} v
 * @param {ReturnType<typeof import("../../lib/scope.js").createScope>} scope
 */
export function attachDrag(v, scope) {
  scope.on(v.root, "pointerdown", (ev) => startDrag(v, ev));
  scope.on(v.root, "pointermove", (ev) => moveDrag(v, ev));
  scope.on(v.root, "pointerup", (ev) => finishDrag(v, ev));
  scope.on(v.root, "pointercancel", (ev) => cancelDrag(v, ev));
  scope.add(() => endDrag(v));
}
