// Form edits: every control writes its trait on change (one save each); sliders show their value
// while they move. A method parameter writes the whole `method_values` dict (Python checks it).
import { TYPED_FIELDS } from "./errors.js";
import { formatWeight } from "./format.js";
import { sendImage } from "./image.js";
import { paramInfo } from "./methods.js";
import { formatParam, parseParam } from "./params.js";

/** @typedef {import("./view.js").StudioView} StudioView */

/** A file's text to Python as {"type": "load_spec", text, name} (the name for its messages). */
function loadSpec(v, file) {
  file.text().then(
    (text) => v.model.send({ type: "load_spec", text, name: file.name }),
    (err) => v.model.send({ type: "client_error", message: `could not read ${file.name}: ${err.message}` }),
  );
}

function commitWindowEnd(v, t) {
  const w = v.model.get("windows") || {};
  const key = t === v.crossEnd ? "cross" : "self_attn";
  const start = (w[key] || [0, 0])[0];
  v.commit({ windows: { ...w, [key]: [Math.min(start, Number(t.value)), Number(t.value)] } });
}

function commitWeight(v, t) {
  const word = t.closest(".p2p-studio__weight").dataset.word;
  const values = { ...(v.model.get("reweight") || {}) };
  const w = Math.round(Number(t.value) * 10) / 10;
  if (w === 1) delete values[word];
  else values[word] = w;
  v.commit({ reweight: values });
}

const isWeightSlider = (t) => t.classList && t.classList.contains("p2p-studio__slider");

/** The trait a plain control writes, and how its value is read. */
function plainEdit(v, t) {
  if (t === v.source) return { source: v.source.value };
  if (t === v.target) return { target: v.target.value };
  if (t === v.seed) return { seed: Number.parseInt(v.seed.value, 10) };
  if (t === v.steps) return { steps: Number.parseInt(v.steps.value, 10) };
  if (t === v.guidance) return { guidance: Number.parseFloat(v.guidance.value) };
  if (t === v.scheduler) return { scheduler: v.scheduler.value };
  if (t === v.kind) return { kind: v.kind.value };
  if (t === v.baseline) return { baseline: v.baseline.checked };
  if (t === v.invertMethod) return { invert_method: v.invertMethod.value };
  if (t === v.threshold) return { blend_threshold: Number(v.threshold.value) };
  if (t === v.methodSelect) return { method: v.methodSelect.value };
  if (t === v.combine) return { combine_p2p: v.combine.checked };
  return null;
}

/** The parameter a control of the method's fields edits, with the value it sends. */
function paramEdit(v, t) {
  const box = t.closest && t.closest(".p2p-studio__param");
  if (!box || !v.params.contains(box)) return null;
  const param = paramInfo(v, box.dataset.param);
  if (!param) return null;
  // a field sends its text, a slider its number, a checkbox its state
  return { param, text: t.value, value: parseParam(param, t.value, t.checked) };
}

function commitParam(v, t) {
  const edit = paramEdit(v, t);
  if (!edit) return false;
  const { param, text, value } = edit;
  if (param.kind !== "bool") v.typed[`param:${param.name}`] = text; // kept in the field if Python rejects it
  v.commit({ method_values: { ...(v.model.get("method_values") || {}), [param.name]: value } });
  return true;
}

function onChange(v, e) {
  const t = e.target;
  const plain = plainEdit(v, t);
  if (plain) {
    const [key] = Object.keys(plain);
    if (TYPED_FIELDS.includes(key)) v.typed[key] = { text: t.value, value: plain[key] }; // kept in the field if Python rejects it
    v.shown[key] = plain[key];
    v.commit(plain);
  } else if (commitParam(v, t)) {
    return;
  } else if (t === v.imageInput) {
    if (v.imageInput.files && v.imageInput.files[0]) {
      sendImage(v, v.imageInput.files[0]);
      v.imageInput.value = "";
    }
  } else if (t === v.crossEnd || t === v.selfEnd) commitWindowEnd(v, t);
  else if (isWeightSlider(t)) commitWeight(v, t);
  else if (t === v.loadInput && v.loadInput.files && v.loadInput.files[0]) {
    loadSpec(v, v.loadInput.files[0]);
    v.loadInput.value = "";
  }
}

function onInput(v, e) {
  const t = e.target;
  if (t === v.threshold) v.thresholdOut.textContent = Number(v.threshold.value).toFixed(2);
  else if (t === v.crossEnd) v.crossOut.textContent = `${v.crossEnd.value} / ${v.model.get("n_evals")}`;
  else if (t === v.selfEnd) v.selfOut.textContent = `${v.selfEnd.value} / ${v.model.get("n_evals")}`;
  else if (isWeightSlider(t)) t.parentElement.querySelector("output").textContent = formatWeight(Number(t.value));
  else if (t.classList && t.classList.contains("p2p-studio__param-slider")) {
    // the field beside a parameter's slider follows it while it moves
    const edit = paramEdit(v, t);
    const field = t.parentElement.querySelector(".p2p-studio__param-input");
    if (edit && field) field.value = formatParam(edit.param, edit.value);
  }
}

/**
 * @param {StudioView} v
 * @param {ReturnType<typeof import("../../lib/scope.js").createScope>} scope
 */
export function attachEdits(v, scope) {
  scope.on(v.root, "change", (e) => onChange(v, e));
  scope.on(v.root, "input", (e) => onInput(v, e));
}
