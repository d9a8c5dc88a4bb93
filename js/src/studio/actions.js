// Buttons and keys: Run/Stop, exports (JSON client-side, GIF from Python), saving a result PNG,
// clearing the image, resetting a weight, toggling LocalBlend words, showing every word (not only
// the changed ones); Ctrl/Cmd+Enter runs.
import { downloadBytes } from "../../lib/download.js";
import { needsImage } from "./methods.js";
import { showBlend, showReweight } from "./show.js";

/** @typedef {import("./view.js").StudioView} StudioView */

/** Buttons that only send an action message to Python. */
function messageOf(v, t) {
  if (t === v.runButton) return { type: "run" };
  if (t === v.stopButton) return { type: "stop" };
  if (t === v.gifButton) return { type: "export_gif" };
  if (t === v.clearImage) return { type: "clear_image" };
  return null;
}

function saveImage(v, save) {
  const item = (v.model.get("images") || [])[Number(save.dataset.index)];
  if (item && item.png) downloadBytes(v.doc, item.png, String(item.name || "image.png"), "image/png");
}

function resetWeight(v, reset) {
  const values = { ...(v.model.get("reweight") || {}) };
  delete values[reset.dataset.word];
  v.commit({ reweight: values });
}

function toggleBlendWord(v, chip) {
  const chosen = [...(v.model.get("blend_words") || [])];
  const i = chosen.indexOf(chip.dataset.word);
  if (i >= 0) chosen.splice(i, 1);
  else chosen.push(chip.dataset.word);
  v.commit({ blend_words: chosen });
}

function onClick(v, e) {
  const t = e.target;
  if (!(t instanceof v.win.Element)) return;
  const message = messageOf(v, t);
  if (message) {
    v.model.send(message);
    return;
  }
  if (t === v.jsonButton) {
    const text = v.model.get("spec_json");
    if (text) downloadBytes(v.doc, text, "p2p_edit.json", "application/json");
    return;
  }
  const save = t.closest(".p2p-studio__save");
  if (save) return saveImage(v, save);
  const reset = t.closest(".p2p-studio__reset");
  if (reset) return resetWeight(v, reset);
  const chip = t.closest(".p2p-studio__chip");
  if (chip && !v.busy()) return toggleBlendWord(v, chip);
  if (t === v.moreWeights) {
    v.more.weights = !v.more.weights;
    showReweight(v);
  } else if (t === v.moreChips) {
    v.more.chips = !v.more.chips;
    showBlend(v);
  }
}

function onKey(v, e) {
  if (e.key !== "Enter" || !(e.ctrlKey || e.metaKey)) return;
  e.preventDefault();
  e.stopPropagation();
  // a prompt being edited is committed first
  if (e.target === v.source || e.target === v.target) e.target.dispatchEvent(new v.win.Event("change", { bubbles: true }));
  // an empty prompt is refused by Python (the change above says so); nothing to run then
  const blank = (!v.source.value.trim() && v.root.dataset.image !== "yes") || !v.target.value.trim();
  if (!v.busy() && !blank && v.fieldError.hidden && !needsImage(v)) v.model.send({ type: "run" });
}

/**
 * @param {StudioView} v
 * @param {ReturnType<typeof import("../../lib/scope.js").createScope>} scope
 */
export function attachActions(v, scope) {
  scope.on(v.root, "click", (e) => onClick(v, e));
  scope.on(v.root, "keydown", (e) => onKey(v, e));
}
