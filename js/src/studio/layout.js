// The studio panel's fixed parts, top to bottom: header, prompts, sampling settings, the real
// image, the schedule sliders, reweight, LocalBlend, Run/Stop with progress, results, exports.
import { button, selectOf } from "../../lib/dom.js";

/** @typedef {import("../../lib/dom.js").Builder} Builder */

let errorIds = 0; // ids for aria-describedby, unique in the page

/** A labelled control: <label class="p2p-studio__field"><span>text</span>control</label>. */
export function field(el, labelText, control, className = "") {
  return el("label", { class: `p2p-studio__field ${className}`.trim() }, [
    el("span", { class: "p2p-studio__label", text: labelText }),
    control,
  ]);
}

/** An <input> of `type` (attrs in order: min before value). */
export function input(el, type, className, attrs = {}) {
  return el("input", { class: className, type, ...attrs });
}

function header(el) {
  const modelName = el("span", { class: "p2p-studio__model" });
  const box = el("div", { class: "p2p-studio__header" }, [el("span", { class: "p2p-studio__title", text: "P2P Studio" }), modelName]);
  return { box, modelName };
}

function prompts(el) {
  const source = input(el, "text", "p2p-studio__source", { "aria-label": "source prompt", spellcheck: false });
  const target = input(el, "text", "p2p-studio__target", { "aria-label": "target prompt", spellcheck: false });
  const box = el("div", { class: "p2p-studio__prompts" }, [field(el, "Source", source), field(el, "Target", target)]);
  return { box, source, target };
}

function settings(el) {
  const seed = input(el, "number", "p2p-studio__seed", { min: 0, step: 1, "aria-label": "seed" });
  const steps = input(el, "number", "p2p-studio__steps", { min: 1, max: 1000, step: 1, "aria-label": "steps" });
  const guidance = input(el, "number", "p2p-studio__guidance", { min: 0, max: 50, step: 0.5, "aria-label": "guidance" });
  const kind = selectOf(el, { class: "p2p-studio__kind", "aria-label": "token alignment" }, [
    ["auto", "auto"],
    ["replace", "word swap (replace)"],
    ["refine", "refine (added words)"],
  ]);
  // options come from Python (scheduler_choices), filled in by showValues
  const scheduler = el("select", { class: "p2p-studio__scheduler", "aria-label": "scheduler" });
  const baseline = input(el, "checkbox", "p2p-studio__baseline");
  const baselineText = el.text(" also without P2P (same seed)");
  const box = el("div", { class: "p2p-studio__settings" }, [
    field(el, "Seed", seed),
    field(el, "Steps", steps),
    field(el, "Guidance", guidance),
    field(el, "Scheduler", scheduler),
    field(el, "Alignment", kind),
    el("label", { class: "p2p-studio__field p2p-studio__check" }, [baseline, baselineText]),
  ]);
  return { box, seed, steps, guidance, scheduler, kind, baseline, baselineText };
}

/** A real image to edit (optional): dropped here or chosen with the file button. */
function realImage(el) {
  const imageInput = input(el, "file", "p2p-studio__image-file", { accept: "image/*", "aria-label": "image to edit" });
  const preview = el("img", { class: "p2p-studio__input-preview", alt: "the image to edit" });
  const imageName = el("span", { class: "p2p-studio__input-name" });
  const invertMethod = selectOf(el, { class: "p2p-studio__invert", "aria-label": "inversion method" }, [
    ["null-text", "null-text (best, slow)"],
    ["negative-prompt", "negative prompt (fast)"],
    ["ddim", "DDIM (plain)"],
  ]);
  const clearImage = button(el, "p2p-studio__clear-image", "Remove image");
  const box = el("fieldset", { class: "p2p-studio__real" }, [
    el("legend", { text: "Real image (optional): drop a picture or choose a file; the source prompt is its caption" }),
    imageInput,
    preview,
    imageName,
    field(el, "Inversion", invertMethod),
    clearImage,
  ]);
  return { box, imageInput, preview, imageName, invertMethod, clearImage };
}

/** The schedule sliders (shown only when no AlphaTimeline is). */
function schedule(el) {
  const slider = (cls, label) => input(el, "range", cls, { min: 0, step: 1, "aria-label": label });
  const crossEnd = slider("p2p-studio__cross", "cross-attention injection ends at step");
  const selfEnd = slider("p2p-studio__self", "self-attention injection ends at step");
  const crossOut = el("output", { class: "p2p-studio__value" });
  const selfOut = el("output", { class: "p2p-studio__value" });
  const box = el("div", { class: "p2p-studio__schedule" }, [
    field(el, "Cross-attention until step", crossEnd),
    crossOut,
    field(el, "Self-attention until step", selfEnd),
    selfOut,
  ]);
  return { box, crossEnd, selfEnd, crossOut, selfOut };
}

function reweight(el) {
  const rows = el("div", { class: "p2p-studio__rows" });
  const box = el("fieldset", { class: "p2p-studio__reweight" }, [
    el("legend", { text: "Reweight target words (1 = unchanged)" }),
    rows,
  ]);
  return { box, rows };
}

function blend(el) {
  const chips = el("div", { class: "p2p-studio__chips", role: "group", "aria-label": "LocalBlend words" });
  const threshold = input(el, "range", "p2p-studio__threshold", {
    min: 0.05,
    max: 0.95,
    step: 0.05,
    "aria-label": "LocalBlend threshold",
  });
  const thresholdOut = el("output", { class: "p2p-studio__value" });
  const box = el("fieldset", { class: "p2p-studio__blend" }, [
    el("legend", { text: "LocalBlend: keep everything outside these words" }),
    chips,
    field(el, "Threshold", threshold),
    thresholdOut,
  ]);
  return { box, chips, threshold, thresholdOut };
}

function actions(el) {
  const runButton = button(el, "p2p-studio__run", "Run");
  const stopButton = button(el, "p2p-studio__stop", "Stop");
  const bar = el("progress", { class: "p2p-studio__progress", max: 1, value: 0, "aria-label": "run progress" });
  const statusText = el("span", { class: "p2p-studio__status", role: "status", "aria-live": "polite" });
  const box = el("div", { class: "p2p-studio__actions" }, [runButton, stopButton, bar, statusText]);
  return { box, runButton, stopButton, bar, statusText };
}

function exports(el) {
  const jsonButton = button(el, "p2p-studio__json", "Export edit JSON");
  const gifButton = button(el, "p2p-studio__gif", "Save playback GIF");
  const loadInput = input(el, "file", "p2p-studio__file", { accept: ".json,application/json" });
  const box = el("div", { class: "p2p-studio__export" }, [
    jsonButton,
    gifButton,
    el("label", { class: "p2p-studio__load" }, ["Load edit JSON ", loadInput]),
  ]);
  return { box, jsonButton, gifButton, loadInput };
}

/**
 * Every node the panel's code touches, by name, and the root.
 * @param {Builder} el
 */
export function layout(el) {
  const { box: headerBox, ...headerParts } = header(el);
  const { box: promptsBox, ...promptParts } = prompts(el);
  const { box: settingsBox, ...settingParts } = settings(el);
  const { box: realBox, ...realParts } = realImage(el);
  const { box: scheduleBox, ...scheduleParts } = schedule(el);
  const { box: reweightBox, rows: reweightRows } = reweight(el);
  const { box: blendBox, chips: blendChips, ...blendParts } = blend(el);
  const { box: actionsBox, ...actionParts } = actions(el);
  const results = el("div", { class: "p2p-studio__results" });
  const resultNote = el("p", { class: "p2p-studio__result-note", role: "status", hidden: true });
  // an error about one field shows under that field; others under Run/Stop, near the status
  const fieldError = el("p", { class: "p2p-studio__field-error", id: `p2p-studio-error-${++errorIds}`, hidden: true });
  const messages = el("div", { class: "p2p-studio__messages" });
  const { box: exportBox, ...exportParts } = exports(el);
  const root = el(
    "div",
    {
      class: "p2p-studio p2p-root",
      "data-lm-suppress-shortcuts": "true",
      role: "group",
      "aria-label": "Prompt-to-Prompt studio",
    },
    [headerBox, promptsBox, settingsBox, realBox, scheduleBox, reweightBox, blendBox, actionsBox, messages, fieldError, resultNote, results, exportBox]
  );
  return {
    root,
    ...headerParts,
    ...promptParts,
    ...settingParts,
    realBox,
    ...realParts,
    schedule: scheduleBox,
    ...scheduleParts,
    reweightBox,
    reweightRows,
    blendBox,
    blendChips,
    ...blendParts,
    ...actionParts,
    results,
    resultNote,
    fieldError,
    messages,
    ...exportParts,
  };
}
