// Clicks and form controls: chips (pick and place), link lines and remove buttons (unlink), the
// weights in the links list, the prompt fields, auto-align and the BOS/EOS box.
import { parseWeight, setWeight } from "../../lib/alignment.js";
import { activate } from "./chips.js";

/** @typedef {import("./view.js").AlignerView} AlignerView */

function onClick(v, ev) {
  const target = ev.target;
  if (!(target instanceof Element)) return;
  const chip = target.closest(".p2p-aligner__chip");
  if (chip && v.root.contains(chip)) {
    if (!v.suppressClick) activate(v, chip.dataset.side, Number(chip.dataset.pos));
    return;
  }
  const line = target.closest(".p2p-aligner__hit");
  if (line) {
    v.unlink(Number(line.getAttribute("data-i")), Number(line.getAttribute("data-j")));
    return;
  }
  const rm = target.closest(".p2p-aligner__remove");
  if (rm) v.unlink(Number(rm.dataset.i), Number(rm.dataset.j));
}

function onWeightChange(v, ev) {
  const input = ev.target;
  if (!(input instanceof Element) || !input.classList.contains("p2p-aligner__weight")) return;
  // an unparsable weight is sent as NaN (null in JSON): Python rejects it and shows why
  const w = parseWeight(input.value);
  v.commit(setWeight(v.links(), Number(input.dataset.i), Number(input.dataset.j), w === null ? Number.NaN : w));
}

function save(v, key, value) {
  v.model.set(key, value);
  v.model.save_changes();
}

/**
 * @param {AlignerView} v
 * @param {ReturnType<typeof import("../../lib/scope.js").createScope>} scope
 */
export function attachControls(v, scope) {
  scope.on(v.root, "click", (ev) => onClick(v, ev));
  scope.on(v.root, "change", (ev) => onWeightChange(v, ev));
  // Python re-tokenises the text
  const onText = (ev) => save(v, ev.target.dataset.side, ev.target.value);
  scope.on(v.inputs.source, "change", onText);
  scope.on(v.inputs.target, "change", onText);
  scope.on(v.kindSelect, "change", () => save(v, "kind", v.kindSelect.value));
  scope.on(v.autoButton, "click", () => {
    v.picked = null;
    v.model.send({ type: "auto_align", kind: v.kindSelect.value });
    v.announcer.announce(`auto-align (${v.kindSelect.value}) requested`);
  });
  scope.on(v.specialBox, "change", () => save(v, "show_special", v.specialBox.checked));
}
