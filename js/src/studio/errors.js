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

/** Whether the error shown now is about the trait `name` (or one of its parts: "method_values.x"). */
export function refused(v, name) {
  const m = v.model;
  return Boolean(m.get("error")) && (m.get("error_field") || "").split(".")[0] === name;
}

/**
 * The text a rejected field keeps, or undefined (then it shows the model's value).
 *
 * `v.typed[name]` is `{text, value}`: what the user last committed in the field. The page's own
 * write changes the model before the kernel answers, so the typed text is not dropped then (the
 * model holds the value it was read as); the kernel's refusal sets the error first and then puts
 * its value back, so from then on the error keeps the text. It goes once the kernel holds another
 * value with no error about the field (accepted, or a value the kernel set itself).
 */
export function keptText(v, name) {
  const kept = v.typed[name];
  if (kept === undefined) return undefined;
  const m = v.model;
  if (m.get("error") && m.get("error_field") === name) return kept.text;
  if (!Object.is(m.get(name), kept.value)) delete v.typed[name];
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
