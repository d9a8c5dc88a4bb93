// Keyboard on the chips: arrows/Home/End move within a row (roving tabindex), Down/Up move to the
// next / previous row (a segment's source, its target, the next segment's source ...),
// Enter/Space pick and place, Escape cancels a pick or drag, Delete/Backspace remove a chip's links.
// Handled keys stop here so that the notebook does not act on them too.
import { removeLinksOf } from "../../lib/alignment.js";
import { activate, focusChip, renderLinkState } from "./chips.js";
import { cancelDrag } from "./drag.js";
import { rowKey } from "./view.js";

/** @typedef {import("./view.js").AlignerView} AlignerView */

const stop = (ev) => {
  ev.preventDefault();
  ev.stopPropagation();
};

/** Down / Up: the next / previous row, top to bottom (a segment's source row, its target row,
 * the next segment's source row, ...). False where there is none. */
function switchRow(v, side, segment, step) {
  const order = v.rows.segments.flatMap((s) => [["source", s], ["target", s]]);
  const here = order.findIndex(([a, s]) => a === side && s === segment);
  const next = order[here + step];
  if (here < 0 || !next) return false;
  const [to, toSegment] = next;
  const candidates = v.visibleChips(to, toSegment);
  if (!candidates.length) return false;
  const active = v.active[rowKey(to, toSegment)];
  const keep = candidates.find((c) => Number(c.dataset.pos) === active) || candidates[0];
  focusChip(v, to, Number(keep.dataset.pos));
  return true;
}

function removeLinksOfChip(v, side, pos) {
  const result = removeLinksOf(v.links(), side, pos);
  if (!result.removed) return;
  v.commit(result.links);
  v.announcer.announce(`removed ${result.removed} link${result.removed > 1 ? "s" : ""} of ${v.nameOf(side, pos)}`);
}

/** Act on a key pressed on a chip; false when the key is not one of ours. */
function chipKey(v, ev, chip) {
  const side = chip.dataset.side;
  const segment = chip.dataset.segment || "";
  const pos = Number(chip.dataset.pos);
  const chips = v.visibleChips(side, segment);
  const index = chips.indexOf(chip);
  const focusAt = (k) => focusChip(v, side, Number(chips[k].dataset.pos));
  const key = ev.key;
  if (key === "Enter" || key === " ") {
    // handled here (not through the button's native click) so that every environment behaves
    // the same; preventDefault stops the native click that would toggle the pick back
    if (!ev.repeat) activate(v, side, pos);
  } else if (key === "ArrowRight" && index < chips.length - 1) focusAt(index + 1);
  else if (key === "ArrowLeft" && index > 0) focusAt(index - 1);
  else if (key === "Home" && chips.length) focusAt(0);
  else if (key === "End" && chips.length) focusAt(chips.length - 1);
  else if (key === "ArrowDown" || key === "ArrowUp") switchRow(v, side, segment, key === "ArrowDown" ? 1 : -1);
  else if (key === "Delete" || key === "Backspace") removeLinksOfChip(v, side, pos);
  else if (key.startsWith("Arrow")) {
    // at the end of a row: swallow so that the notebook does not move between cells
  } else return false;
  return true;
}

function onKeyDown(v, ev) {
  const target = ev.target;
  if (!(target instanceof Element)) return;
  const chip = target.closest(".p2p-aligner__chip");
  if (ev.key === "Escape" && (v.picked || v.drag)) {
    v.picked = null;
    cancelDrag(v);
    v.announcer.announce("cancelled");
    renderLinkState(v);
    stop(ev);
    return;
  }
  if (chip && chipKey(v, ev, chip)) stop(ev);
}

function onKeyUp(ev) {
  // Space activates a button on keyup: already handled on keydown
  if (ev.key === " " && ev.target instanceof Element && ev.target.closest(".p2p-aligner__chip")) stop(ev);
}

/**
 * @param {AlignerView} v
 * @param {ReturnType<typeof import("../../lib/scope.js").createScope>} scope
 */
export function attachKeyboard(v, scope) {
  scope.on(v.root, "keydown", (ev) => onKeyDown(v, ev));
  scope.on(v.root, "keyup", onKeyUp);
}
