// Buttons: presets (a message; Python applies them), adding and removing per-word rows.
import { addWordRow, removeWordRow } from "../../lib/timeline.js";

/** @param {import("./view.js").TimelineView} v */
function onClick(v, ev) {
  const target = ev.target;
  if (!(target instanceof Element)) return;
  const preset = target.closest(".p2p-timeline__preset");
  if (preset) {
    v.model.send({ type: "preset", name: preset.dataset.preset });
    v.announcer.announce(`preset ${preset.textContent} requested`);
    return;
  }
  const rm = target.closest(".p2p-timeline__remove");
  if (rm) {
    v.commit(removeWordRow(v.windows(), rm.dataset.word));
    v.announcer.announce(`removed the row of ${rm.dataset.word}`);
    return;
  }
  if (target.closest(".p2p-timeline__add") && v.wordSelect.value) {
    const word = v.wordSelect.value;
    v.commit(addWordRow(v.windows(), word));
    v.announcer.announce(`added a row for ${word}`);
  }
}

/**
 * @param {import("./view.js").TimelineView} v
 * @param {ReturnType<typeof import("../../lib/scope.js").createScope>} scope
 */
export function attachActions(v, scope) {
  scope.on(v.root, "click", (ev) => onClick(v, ev));
}
