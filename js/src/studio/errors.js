// Errors next to their field: when Python rejects a value it names the trait (`error_field`; for
// a method's value "method_values.<parameter>"); the message then shows right under that
// control (aria-invalid, aria-describedby), the control keeps the text the user typed so it can be
// fixed, and the general banner stays hidden.
import { paramControl } from "./methods.js";

/** @typedef {import("./view.js").StudioView} StudioView */

/** Text and number fields whose rejected text stays in the field. */
export const TYPED_FIELDS = ["source", "target", "seed", "steps", "guidance"];

/** The control that edits the trait `name` ("method_values.<parameter>": that parameter's), or null. */
export function controlOf(v, name) {
  if (name.startsWith("method_values.")) {
    const node = paramControl(v, name.slice("method_values.".length));
    return node && !node.closest("[hidden]") ? node : null;
  }
  const nodes = {
    source: v.source,
    target: v.target,
    seed: v.seed,
    steps: v.steps,
    guidance: v.guidance,
    scheduler: v.scheduler,
    kind: v.kind,
    baseline: v.baseline,
    invert_method: v.invertMethod,
    blend_threshold: v.threshold,
    reweight: v.reweightRows,
    blend_words: v.blendChips,
    windows: v.crossEnd,
    method: v.methodSelect,
    combine_p2p: v.combine,
    method_values: v.params,
  };
  const node = nodes[name] || null;
  return node && !node.closest("[hidden]") ? node : null;
}

/** Whether the error about `name` is shown at its control (then the banner is not needed). */
export function placed(v, name) {
  return controlOf(v, name) !== null;
}

/** The text a rejected field keeps, or undefined (then it shows the model's value). */
export function keptText(v, name) {
  const m = v.model;
  if (m.get("error") && m.get("error_field") === name && v.typed[name] !== undefined) return v.typed[name];
  delete v.typed[name];
  return undefined;
}

/** The text a rejected parameter field keeps, or undefined (each edit writes its text first, so
 * the text kept is always the one Python refused). */
export function keptParamText(v, param) {
  const m = v.model;
  const refused = m.get("error") && m.get("error_field") === `method_values.${param}`;
  return refused ? v.typed[`param:${param}`] : undefined;
}

function unmark(v) {
  for (const node of v.root.querySelectorAll("[aria-invalid]")) {
    node.removeAttribute("aria-invalid");
    // a parameter's control keeps its own description (its help)
    if (node.dataset.describedby) node.setAttribute("aria-describedby", node.dataset.describedby);
    else node.removeAttribute("aria-describedby");
  }
}

/** Show (or clear) the error next to its field. */
export function showFieldError(v) {
  unmark(v);
  const message = v.model.get("error") || "";
  const node = message ? controlOf(v, v.model.get("error_field") || "") : null;
  v.fieldError.hidden = node === null;
  v.root.dataset.errorField = node === null ? "" : v.model.get("error_field");
  if (node === null) {
    v.fieldError.textContent = "";
    return;
  }
  v.fieldError.textContent = message;
  // a parameter's error goes between its control and its help text: right under what was typed
  const anchor = node.closest(".p2p-studio__param-label") || node.closest(".p2p-studio__field") || node;
  anchor.after(v.fieldError);
  node.setAttribute("aria-invalid", "true");
  node.setAttribute("aria-describedby", [v.fieldError.id, node.dataset.describedby].filter(Boolean).join(" "));
}
