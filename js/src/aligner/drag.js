// Pointer drag from a chip onto a chip of the other row (of its token segment) links them; a ghost
// line follows the pointer. A press that moves less than DRAG_THRESHOLD_PX is a click (the click handler picks).
import { center } from "./lines.js";
import { renderLinkState } from "./chips.js";

const DRAG_THRESHOLD_PX = 4;
/** a drag this close to the stage's left or right edge scrolls the (one-line) rows that way */
const EDGE_PX = 40;
const EDGE_STEP_PX = 24;

/** @typedef {import("./view.js").AlignerView} AlignerView */

/** The chip under the pointer (or the event's target), if it is one of this view's chips. */
function dropChipAt(v, ev) {
  let hitEl = null;
  if (typeof v.doc.elementFromPoint === "function" && Number.isFinite(ev.clientX)) {
    hitEl = v.doc.elementFromPoint(ev.clientX, ev.clientY);
  }
  if (!hitEl || !v.root.contains(hitEl)) hitEl = ev.target;
  if (!(hitEl instanceof Element)) return null;
  const chip = hitEl.closest(".p2p-aligner__chip");
  return chip && v.root.contains(chip) ? chip : null;
}

/** End the drag, if any: highlights and ghost line off, pointer capture released. */
export function cancelDrag(v) {
  const drag = v.drag;
  if (!drag) return;
  if (drag.over) drag.over.classList.remove("p2p-aligner__chip--drop");
  drag.chip.classList.remove("p2p-aligner__chip--dragging");
  v.ghost.setAttribute("visibility", "hidden");
  try {
    if (drag.chip.hasPointerCapture && drag.chip.hasPointerCapture(drag.pointerId)) {
      drag.chip.releasePointerCapture(drag.pointerId);
    }
  } catch (_) {
    /* capture already gone */
  }
  v.drag = null;
}

function onPointerDown(v, ev) {
  const target = ev.target;
  if (!(target instanceof Element)) return;
  const chip = target.closest(".p2p-aligner__chip");
  if (!chip || (ev.button !== undefined && ev.button !== 0) || v.drag) return;
  ev.stopPropagation(); // keep the notebook's own drag/selection handlers out of it
  v.drag = {
    pointerId: ev.pointerId,
    side: chip.dataset.side,
    pos: Number(chip.dataset.pos),
    x0: ev.clientX,
    y0: ev.clientY,
    dragging: false,
    chip,
    over: null,
  };
  try {
    chip.setPointerCapture(ev.pointerId);
  } catch (_) {
    /* not supported (e.g. synthetic events): plain bubbling still works */
  }
}

function drawGhost(v, ev) {
  const drag = v.drag;
  const base = v.stage.getBoundingClientRect();
  const [x1, y1] = center(drag.chip.getBoundingClientRect(), base, drag.side === "source" ? "bottom" : "top");
  v.ghost.setAttribute("x1", String(x1));
  v.ghost.setAttribute("y1", String(y1));
  v.ghost.setAttribute("x2", String(ev.clientX - base.left));
  v.ghost.setAttribute("y2", String(ev.clientY - base.top));
  v.ghost.setAttribute("visibility", "visible");
}

function markDropTarget(v, ev) {
  const drag = v.drag;
  const over = dropChipAt(v, ev);
  // a chip of the other row of the same token segment (SD3: CLIP's tokens link to CLIP's only)
  const valid = over && over.dataset.side !== drag.side && over.dataset.segment === drag.chip.dataset.segment ? over : null;
  if (valid === drag.over) return;
  if (drag.over) drag.over.classList.remove("p2p-aligner__chip--drop");
  if (valid) valid.classList.add("p2p-aligner__chip--drop");
  drag.over = valid;
}

function onPointerMove(v, ev) {
  const drag = v.drag;
  if (!drag || ev.pointerId !== drag.pointerId) return;
  if (!drag.dragging) {
    if (Math.hypot(ev.clientX - drag.x0, ev.clientY - drag.y0) < DRAG_THRESHOLD_PX) return;
    drag.dragging = true;
    drag.chip.classList.add("p2p-aligner__chip--dragging");
    v.announcer.announce(`dragging ${drag.side} token ${v.nameOf(drag.side, drag.pos)}`);
  }
  ev.preventDefault();
  const box = v.scroller.getBoundingClientRect();
  if (ev.clientX > box.right - EDGE_PX) v.scroller.scrollLeft += EDGE_STEP_PX;
  else if (ev.clientX < box.left + EDGE_PX) v.scroller.scrollLeft -= EDGE_STEP_PX;
  drawGhost(v, ev);
  markDropTarget(v, ev);
}

function onPointerUp(v, ev) {
  if (!v.drag || ev.pointerId !== v.drag.pointerId) return;
  const state = v.drag;
  const over = state.dragging ? dropChipAt(v, ev) : null;
  cancelDrag(v);
  if (!state.dragging) return; // a click: the click handler picks the chip
  v.suppressClick = true;
  setTimeout(() => {
    v.suppressClick = false;
  }, 0);
  if (over && over.dataset.side !== state.side) {
    v.picked = null;
    v.link(state.side, state.pos, Number(over.dataset.pos)); // refused (and said) across segments
  } else {
    v.announcer.announce("dropped outside the other row: nothing linked");
  }
  renderLinkState(v);
}

function onPointerCancel(v, ev) {
  if (v.drag && ev.pointerId === v.drag.pointerId) {
    cancelDrag(v);
    v.announcer.announce("drag cancelled");
  }
}

/**
 * @param {AlignerView} v
 * @param {ReturnType<typeof import("../../lib/scope.js").createScope>} scope
 */
export function attachDrag(v, scope) {
  scope.on(v.root, "pointerdown", (ev) => onPointerDown(v, ev));
  scope.on(v.root, "pointermove", (ev) => onPointerMove(v, ev));
  scope.on(v.root, "pointerup", (ev) => onPointerUp(v, ev));
  scope.on(v.root, "pointercancel", (ev) => onPointerCancel(v, ev));
  scope.add(() => cancelDrag(v));
}
