// The method menu and the chosen rule's parameters, built from what Python declares (`methods`:
// each rule's Param.describe() list), with no code of any one rule here. Numbers get a field
// (and a slider when bounded floats), booleans a checkbox, choices a select, word lists a text
// field; the help is the field's description. Python checks every value (Param.check).
import { describeParam, formatParam, hasSlider, paramLabel, placeholderOf, stepOf } from "./params.js";
import { input, newId } from "./layout.js";

/** @typedef {import("./view.js").StudioView} StudioView */
/** @typedef {import("./params.js").ParamInfo} ParamInfo */

/** The menu entry of the chosen method (or of `name`), or null. */
export function methodEntry(v, name) {
  const chosen = name === undefined ? v.model.get("method") || "p2p" : name;
  return (v.model.get("methods") || []).find((m) => m.name === chosen) || null;
}

/** Whether the chosen method can run now: one that follows an inversion needs a real image. */
export function needsImage(v) {
  const entry = methodEntry(v);
  const png = v.model.get("input_image");
  const has = !!png && (png.byteLength || png.length || 0) > 0;
  return !!entry && entry.follows_inversion === true && !has;
}

/** Whether P2P's rule is part of the run (alone, or combined with the chosen rule). */
export function usesP2P(v) {
  return (v.model.get("method") || "p2p") === "p2p" || v.model.get("combine_p2p") === true;
}

function numberControls(v, param, describedBy) {
  const attrs = { step: stepOf(param), "aria-describedby": describedBy, placeholder: placeholderOf(param) };
  if (typeof param.low === "number") attrs.min = param.low;
  if (typeof param.high === "number") attrs.max = param.high;
  const box = input(v.el, "number", "p2p-studio__param-input", attrs);
  if (!hasSlider(param)) return [box];
  const slider = input(v.el, "range", "p2p-studio__param-slider", {
    min: param.low,
    max: param.high,
    step: stepOf(param),
    "aria-label": `${paramLabel(param.name)} slider`,
    "aria-describedby": describedBy,
  });
  return [box, slider];
}

function controlsOf(v, param, describedBy) {
  const el = v.el;
  if (param.kind === "bool") return [input(el, "checkbox", "p2p-studio__param-input", { "aria-describedby": describedBy })];
  if (param.kind === "choice") {
    const options = (param.choices || []).map((c) => el("option", { value: String(c), text: String(c) }));
    return [el("select", { class: "p2p-studio__param-input", "aria-describedby": describedBy }, options)];
  }
  if (param.kind === "words") {
    const attrs = { spellcheck: false, "aria-describedby": describedBy, placeholder: placeholderOf(param) };
    return [input(el, "text", "p2p-studio__param-input", attrs)];
  }
  return numberControls(v, param, describedBy);
}

/** One parameter: its label, control(s) and description; data-param names it. */
function paramField(v, param) {
  const el = v.el;
  const helpId = newId("p2p-studio-param-help");
  const controls = controlsOf(v, param, helpId);
  for (const c of controls) c.dataset.describedby = helpId; // restored after a field error clears
  const label = el("label", { class: "p2p-studio__param-label" }, [
    el("span", { class: "p2p-studio__label", text: paramLabel(param.name) }),
    ...controls,
  ]);
  return el("div", { class: `p2p-studio__field p2p-studio__param p2p-studio__param--${param.kind}`, dataset: { param: param.name } }, [
    label,
    el("span", { class: "p2p-studio__param-help", id: helpId, text: describeParam(param), title: describeParam(param) }),
  ]);
}

/** The parameter `name`'s main control (its field, checkbox or select), or null. */
export function paramControl(v, name) {
  const box = [...v.params.children].find((c) => c.dataset.param === name);
  return box ? box.querySelector(".p2p-studio__param-input") : null;
}

/** The parameter declaration `name` of the chosen method, or null. */
export function paramInfo(v, name) {
  const entry = methodEntry(v);
  return (entry && (entry.params || []).find((p) => p.name === name)) || null;
}

function showMenu(v) {
  const methods = v.model.get("methods") || [];
  const key = JSON.stringify(methods.map((m) => [m.name, m.label, m.class_name]));
  if (v.methodSelect.dataset.choices !== key) {
    // the method's name as its paper gives it; the rule's class in the tooltip
    v.methodSelect.replaceChildren(
      ...methods.map((m) => v.el("option", { value: m.name, text: m.label, title: m.class_name || m.name })),
    );
    v.methodSelect.dataset.choices = key;
  }
  v.methodSelect.value = v.model.get("method") || "p2p";
  const chosen = methods.find((m) => m.name === v.methodSelect.value);
  v.methodSelect.title = chosen ? chosen.class_name || chosen.name : "";
}

/** Rebuild the parameters' fields when the method (or its declaration) changes; else refresh values. */
function showParams(v, entry) {
  const params = (entry && entry.params) || [];
  const key = JSON.stringify([entry && entry.name, params]);
  if (v.params.dataset.key !== key) {
    v.params.replaceChildren(...params.map((p) => paramField(v, p)));
    v.params.dataset.key = key;
  }
  v.params.hidden = params.length === 0;
  const values = v.model.get("method_values") || {};
  for (const param of params) showParamValue(v, param, values[param.name]);
}

function showParamValue(v, param, value) {
  const control = paramControl(v, param.name);
  if (!control) return;
  if (param.kind === "bool") {
    control.checked = value === true;
    return;
  }
  const kept = v.keptParam(param.name);
  const text = kept !== undefined ? kept : formatParam(param, value);
  if (v.doc.activeElement !== control || kept !== undefined) control.value = text;
  const slider = control.parentElement.querySelector(".p2p-studio__param-slider");
  if (slider && typeof value === "number") slider.value = String(value);
}

/** The note under the menu: what a method needs before it can run. */
function showNote(v, entry) {
  let text = "";
  if (entry && entry.follows_inversion) {
    text = needsImage(v)
      ? `${entry.label} follows the inversion of a real image: load one under "Real image" to run it.`
      : `${entry.label} runs on the loaded image's inversion.`;
  }
  v.methodNote.textContent = text;
  v.methodNote.hidden = text === "";
  v.root.dataset.needsImage = needsImage(v) ? "yes" : "no";
}

/** The menu, the chosen method's description, parameters, "combine with P2P" and note. */
export function showMethod(v) {
  showMenu(v);
  const entry = methodEntry(v);
  v.methodHelp.textContent = (entry && entry.help) || "";
  showParams(v, entry);
  v.combineBox.hidden = !(entry && entry.combinable);
  v.combine.checked = v.model.get("combine_p2p") === true;
  showNote(v, entry);
  v.p2pBox.hidden = !usesP2P(v);
  v.root.dataset.method = (entry && entry.name) || "p2p";
}
