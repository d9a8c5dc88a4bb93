// Drawing the aligner from the model: toolbar values, chips, and everything that shows links.
import { renderChips, renderLinkState } from "./chips.js";
import { layoutLinks } from "./lines.js";
import { renderHeat, renderList } from "./panels.js";
import { renderNotice } from "./view.js";

/** @typedef {import("./view.js").AlignerView} AlignerView */

/** The prompt fields from the model (Python may have changed or reverted them). */
export function showPrompts(v) {
  v.inputs.source.value = v.model.get("source") || "";
  v.inputs.target.value = v.model.get("target") || "";
}

export function showKind(v) {
  v.kindSelect.value = v.model.get("kind") || "auto";
}

/** Everything that depends on the links: chip state, the list, M, the lines. */
export function renderLinks(v) {
  renderLinkState(v);
  renderList(v);
  renderHeat(v);
  renderNotice(v);
  layoutLinks(v);
}

/** New tokens (or BOS/EOS shown or hidden): the chips and everything on them. */
export function renderTokens(v) {
  const first = (v.model.get("source_tokens") || [])[0];
  v.specialText.textContent = first && first.special !== "bos" ? "show EOS" : "show BOS/EOS";
  renderChips(v);
  renderLinks(v);
}

export function renderAll(v) {
  showPrompts(v);
  showKind(v);
  v.specialBox.checked = v.showSpecial();
  renderTokens(v);
}
