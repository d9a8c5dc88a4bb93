// The studio panel's fixed parts. One frame: a header; the one source/target pair across the
// top with its changed words; then the controls (the method and its parameters, sampling, P2P's
// own settings, LocalBlend, a real image) beside the output (Run/Stop and progress, the results' state, the results large with
// zoom and pixel values, the exports); then the section tabs that choose what the Studio shows
// under the panel (playback, token alignment, schedule).
import { button, selectOf } from "../../lib/dom.js";

/** @typedef {import("../../lib/dom.js").Builder} Builder */

let ids = 0; // ids for aria-describedby / aria-controls, unique in the page

/** A fresh id with `prefix`, unique in the page. */
export function newId(prefix) {
  return `${prefix}-${++ids}`;
}

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
  // the words that differ between the prompts (filled by showDiff, as text)
  const diff = el("p", { class: "p2p-studio__diff", "aria-live": "polite" });
  const box = el("div", { class: "p2p-studio__prompts" }, [field(el, "Source", source), field(el, "Target", target), diff]);
  return { box, source, target, diff };
}

/** The method menu, its description, its parameters' controls (built by methods.js) and "combine with P2P". */
function method(el) {
  const methodHelpId = newId("p2p-studio-method-help");
  const methodSelect = el("select", { class: "p2p-studio__method", "aria-label": "method", "aria-describedby": methodHelpId });
  const methodHelp = el("p", { class: "p2p-studio__method-help", id: methodHelpId });
  const params = el("div", { class: "p2p-studio__params", role: "group", "aria-label": "method parameters" });
  const combine = input(el, "checkbox", "p2p-studio__combine");
  const combineBox = el("label", { class: "p2p-studio__field p2p-studio__combine-box" }, [
    combine,
    el.text(" combine with Prompt-to-Prompt (its alignment, windows, reweight)"),
  ]);
  const methodNote = el("p", { class: "p2p-studio__method-note", role: "note" });
  const box = el("div", { class: "p2p-studio__method-box" }, [
    field(el, "Method", methodSelect, "p2p-studio__method-field"),
    methodHelp,
    params,
    combineBox,
    methodNote,
  ]);
  return { box, methodSelect, methodHelp, params, combine, combineBox, methodNote };
}

function settings(el) {
  const seed = input(el, "number", "p2p-studio__seed", { min: 0, step: 1, "aria-label": "seed" });
  const steps = input(el, "number", "p2p-studio__steps", { min: 1, max: 1000, step: 1, "aria-label": "steps" });
  const guidance = input(el, "number", "p2p-studio__guidance", { min: 0, max: 50, step: 0.5, "aria-label": "guidance" });
  // options come from Python (scheduler_choices), filled in by showValues
  const scheduler = el("select", { class: "p2p-studio__scheduler", "aria-label": "scheduler" });
  const baseline = input(el, "checkbox", "p2p-studio__baseline");
  const baselineText = el.text(" also without P2P (same seed)");
  const box = el("div", { class: "p2p-studio__settings" }, [
    field(el, "Seed", seed),
    field(el, "Steps", steps),
    field(el, "Guidance", guidance),
    field(el, "Scheduler", scheduler, "p2p-studio__wide"),
    el("label", { class: "p2p-studio__field p2p-studio__check p2p-studio__wide" }, [baseline, baselineText]),
  ]);
  return { box, seed, steps, guidance, scheduler, baseline, baselineText };
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

/** "Show every word" for a list that offers the changed words first. */
function moreButton(el, className, controls) {
  return button(el, `p2p-studio__more ${className}`, "", { "aria-expanded": "false", "aria-controls": controls });
}

/** Prompt-to-Prompt's own settings: alignment, the windows (without a timeline), reweight. */
function p2pSettings(el) {
  const kind = selectOf(el, { class: "p2p-studio__kind", "aria-label": "token alignment" }, [
    ["auto", "auto"],
    ["replace", "word swap (replace)"],
    ["refine", "refine (added words)"],
  ]);
  const { box: scheduleBox, ...scheduleParts } = schedule(el);
  const reweightRows = el("div", { class: "p2p-studio__rows", id: newId("p2p-studio-weights") });
  const moreWeights = moreButton(el, "p2p-studio__more-weights", reweightRows.id);
  const reweightBox = el("div", { class: "p2p-studio__reweight", role: "group", "aria-label": "reweight target words" }, [
    el("span", { class: "p2p-studio__label", text: "Reweight (1 = unchanged)" }),
    reweightRows,
    moreWeights,
  ]);
  const box = el("fieldset", { class: "p2p-studio__p2p" }, [
    el("legend", { text: "Prompt-to-Prompt" }),
    field(el, "Alignment", kind),
    scheduleBox,
    reweightBox,
  ]);
  return { box, kind, schedule: scheduleBox, ...scheduleParts, reweightBox, reweightRows, moreWeights };
}

function blend(el) {
  const blendChips = el("div", { class: "p2p-studio__chips", role: "group", "aria-label": "LocalBlend words", id: newId("p2p-studio-chips") });
  const moreChips = moreButton(el, "p2p-studio__more-chips", blendChips.id);
  const threshold = input(el, "range", "p2p-studio__threshold", {
    min: 0.05,
    max: 0.95,
    step: 0.05,
    "aria-label": "LocalBlend threshold",
  });
  const thresholdOut = el("output", { class: "p2p-studio__value" });
  const blendBox = el("fieldset", { class: "p2p-studio__blend" }, [
    el("legend", { text: "LocalBlend: keep everything outside these words" }),
    blendChips,
    moreChips,
    el("div", { class: "p2p-studio__threshold-row" }, [field(el, "Threshold", threshold), thresholdOut]),
  ]);
  return { blendBox, blendChips, moreChips, threshold, thresholdOut };
}

/** A real image to edit (optional): dropped on this box or chosen with the file button. */
function realImage(el) {
  const imageInput = input(el, "file", "p2p-studio__image-file", { accept: "image/*", "aria-label": "image to edit" });
  const preview = el("img", { class: "p2p-studio__input-preview", alt: "the image to edit" });
  const imageName = el("span", { class: "p2p-studio__input-name" });
  // the model's inversions come from Python (invert_choices: DDIM's on a UNet, the flow solvers on SD3 / Flux)
  const invertMethod = selectOf(el, { class: "p2p-studio__invert", "aria-label": "inversion method" }, []);
  const clearImage = button(el, "p2p-studio__clear-image", "Remove image");
  const realSummary = el("summary", { class: "p2p-studio__real-summary", text: "Real image (optional)" });
  const realHint = el("p", { class: "p2p-studio__hint", text: "Drop a picture here or choose a file; the source prompt is its caption." });
  // where the model cannot invert images: Python's `image_note` says so instead of the inputs
  const imageNote = el("p", { class: "p2p-studio__hint p2p-studio__image-note", hidden: true });
  const realRows = [
    el("div", { class: "p2p-studio__real-row" }, [imageInput, preview, imageName]),
    el("div", { class: "p2p-studio__real-row" }, [field(el, "Inversion", invertMethod), clearImage]),
  ];
  const box = el("details", { class: "p2p-studio__real" }, [realSummary, realHint, imageNote, ...realRows]);
  return { box, imageInput, preview, imageName, invertMethod, clearImage, realSummary, realHint, imageNote, realRows };
}

function actions(el) {
  const runButton = button(el, "p2p-studio__run", "Run", { title: "Run (Ctrl+Enter)" });
  const stopButton = button(el, "p2p-studio__stop", "Stop");
  const bar = el("progress", { class: "p2p-studio__progress", max: 1, value: 0, "aria-label": "run progress" });
  const statusText = el("span", { class: "p2p-studio__status", role: "status", "aria-live": "polite" });
  const box = el("div", { class: "p2p-studio__actions" }, [runButton, stopButton, bar, statusText]);
  return { box, runButton, stopButton, bar, statusText };
}

function resultsBar(el) {
  const zoom = selectOf(el, { class: "p2p-studio__zoom", "aria-label": "zoom of the results" }, [
    ["fit", "fit"],
    ["1", "1×"],
    ["2", "2×"],
    ["4", "4×"],
    ["8", "8×"],
    ["16", "16×"],
  ]);
  // the value under the pointer (or the keyboard probe) in every result at once
  const readout = el("output", { class: "p2p-studio__readout", "aria-live": "polite" });
  const box = el("div", { class: "p2p-studio__results-bar" }, [field(el, "Zoom", zoom), readout]);
  return { box, zoom, readout };
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

/** The section tabs: what the Studio shows under the panel. */
function tabs(el) {
  const tab = (section, text) =>
    el("button", { class: "p2p-studio__tab", type: "button", role: "tab", dataset: { section }, text, "aria-selected": "false" });
  const tabButtons = [tab("playback", "Attention playback"), tab("alignment", "Token alignment"), tab("schedule", "Schedule")];
  const box = el("div", { class: "p2p-studio__tabs", role: "tablist", "aria-label": "Studio sections" }, tabButtons);
  return { box, tabButtons };
}

/**
 * Every node the panel's code touches, by name, and the root.
 * @param {Builder} el
 */
export function layout(el) {
  const { box: headerBox, ...headerParts } = header(el);
  const { box: promptsBox, ...promptParts } = prompts(el);
  const { box: methodBox, ...methodParts } = method(el);
  const { box: settingsBox, ...settingParts } = settings(el);
  const { box: p2pBox, ...p2pParts } = p2pSettings(el);
  const blendParts = blend(el);
  const { box: realBox, ...realParts } = realImage(el);
  const { box: actionsBox, ...actionParts } = actions(el);
  const { box: barBox, ...barParts } = resultsBar(el);
  const results = el("div", { class: "p2p-studio__results" });
  const resultNote = el("p", { class: "p2p-studio__result-note", role: "status", hidden: true });
  // an error about one field shows under that field; others in the banner under Run/Stop
  const fieldError = el("p", { class: "p2p-studio__field-error", id: newId("p2p-studio-error"), hidden: true });
  const messages = el("div", { class: "p2p-studio__messages" });
  const { box: exportBox, ...exportParts } = exports(el);
  const { box: tabsBox, ...tabParts } = tabs(el);
  const controls = el("div", { class: "p2p-studio__controls" }, [methodBox, settingsBox, p2pBox, blendParts.blendBox, realBox]);
  const output = el("div", { class: "p2p-studio__output" }, [actionsBox, messages, resultNote, barBox, results, exportBox]);
  const root = el(
    "div",
    {
      class: "p2p-studio p2p-root",
      "data-lm-suppress-shortcuts": "true",
      role: "group",
      "aria-label": "Prompt-to-Prompt studio",
    },
    [headerBox, promptsBox, el("div", { class: "p2p-studio__body" }, [controls, output]), fieldError, tabsBox]
  );
  return {
    root,
    ...headerParts,
    ...promptParts,
    methodBox,
    ...methodParts,
    ...settingParts,
    p2pBox,
    ...p2pParts,
    ...blendParts,
    realBox,
    ...realParts,
    ...actionParts,
    ...barParts,
    results,
    resultNote,
    fieldError,
    messages,
    ...exportParts,
    tabsBox,
    ...tabParts,
  };
}
