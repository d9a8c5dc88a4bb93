// Showing the model in the panel: values of the controls, the schedule, reweight rows, LocalBlend
// chips, status and progress, and the result images.
import { button } from "../../lib/dom.js";
import { asBytes } from "../../lib/pixels.js";
import { input } from "./layout.js";
import { keptText } from "./errors.js";
import { formatWeight, statusLine } from "./format.js";

/** @typedef {import("./view.js").StudioView} StudioView */

/** The settings' values (a focused prompt field keeps what is being typed). */
export function showValues(v) {
  const m = v.model;
  v.modelName.textContent = m.get("model_name") ? `· ${m.get("model_name")}` : "";
  // a field Python rejected keeps the typed text (to fix it); a focused prompt keeps what is being typed
  const show = (node, key, value) => {
    const kept = keptText(v, key);
    if (kept !== undefined) node.value = kept;
    else if (!((key === "source" || key === "target") && v.doc.activeElement === node)) node.value = value;
  };
  show(v.source, "source", m.get("source") ?? "");
  show(v.target, "target", m.get("target") ?? "");
  show(v.seed, "seed", String(m.get("seed") ?? 0));
  show(v.steps, "steps", String(m.get("steps") ?? 1));
  show(v.guidance, "guidance", String(m.get("guidance") ?? 0));
  showSchedulerChoices(v);
  v.scheduler.value = m.get("scheduler") || "DDIMScheduler";
  v.kind.value = m.get("kind") || "auto";
  v.baseline.checked = m.get("baseline") === true;
  v.invertMethod.value = m.get("invert_method") || "null-text";
  v.threshold.value = String(m.get("blend_threshold") ?? 0.3);
  v.thresholdOut.textContent = Number(v.threshold.value).toFixed(2);
}

/** The scheduler menu's options, as Python lists them ([[name, label], ...]); rebuilt only when they change. */
function showSchedulerChoices(v) {
  const choices = v.model.get("scheduler_choices") || [];
  const key = JSON.stringify(choices);
  if (v.scheduler.dataset.choices === key) return;
  v.scheduler.replaceChildren(...choices.map(([value, text]) => v.el("option", { value, text })));
  v.scheduler.dataset.choices = key;
}

/** The end of the cross and self-attention windows (hidden when an AlphaTimeline is shown), in UNet evaluations. */
export function showSchedule(v) {
  v.schedule.hidden = v.model.get("has_timeline") === true;
  const w = v.model.get("windows") || {};
  const n = v.model.get("n_evals") || v.model.get("steps") || 1;
  for (const [node, out, key] of [
    [v.crossEnd, v.crossOut, "cross"],
    [v.selfEnd, v.selfOut, "self_attn"],
  ]) {
    node.max = String(n);
    node.value = String((w[key] || [0, 0])[1]);
    out.textContent = `${node.value} / ${n}`;
  }
}

function weightRow(v, word, value) {
  const el = v.el;
  const slider = input(el, "range", "p2p-studio__slider", { min: -2, max: 4, step: 0.1, "aria-label": `weight of ${word}` });
  slider.value = String(value);
  const reset = button(el, "p2p-studio__reset", "1", {
    title: `reset ${word} to 1`,
    "aria-label": `reset the weight of ${word} to 1`,
    dataset: { word },
  });
  const row = el("div", { class: "p2p-studio__weight", dataset: { word } }, [
    el("span", { class: "p2p-studio__word", text: word }),
    slider,
    el("output", { class: "p2p-studio__value", text: formatWeight(value) }),
    reset,
  ]);
  if (value !== 1) row.classList.add("p2p-studio__weight--set");
  return row;
}

/** Whether `parent`'s children are exactly one per word of `words`, in order (then they are kept). */
function sameWords(parent, words) {
  const kids = [...parent.children];
  return kids.length === words.length && kids.every((k, i) => k.dataset.word === words[i]);
}

function setWeight(row, value) {
  const slider = row.querySelector("input");
  if (row.ownerDocument.activeElement !== slider || Number(slider.value) !== value) slider.value = String(value);
  row.querySelector("output").textContent = formatWeight(value);
  row.classList.toggle("p2p-studio__weight--set", value !== 1);
}

/** One slider per word of the target (rows are updated in place, so a focused slider keeps focus). */
export function showReweight(v) {
  const words = v.model.get("target_words") || [];
  const values = v.model.get("reweight") || {};
  const valueOf = (word) => (word in values ? values[word] : 1);
  if (sameWords(v.reweightRows, words)) {
    for (const row of v.reweightRows.children) setWeight(row, valueOf(row.dataset.word));
  } else {
    v.reweightRows.replaceChildren(...words.map((word) => weightRow(v, word, valueOf(word))));
  }
  v.reweightBox.hidden = words.length === 0;
}

/** One toggle chip per word of either prompt (kept in place when the words stay the same). */
export function showBlend(v) {
  const words = [...new Set([...(v.model.get("source_words") || []), ...(v.model.get("target_words") || [])])];
  const chosen = new Set(v.model.get("blend_words") || []);
  if (!sameWords(v.blendChips, words)) {
    v.blendChips.replaceChildren(...words.map((word) => button(v.el, "p2p-studio__chip", word, { dataset: { word } })));
  }
  for (const chip of v.blendChips.children) chip.setAttribute("aria-pressed", chosen.has(chip.dataset.word) ? "true" : "false");
}

/** Status text, progress, and which controls are usable (most are locked while running). */
export function showStatus(v) {
  const m = v.model;
  const status = m.get("status") || "idle";
  const [done, total] = m.get("progress") || [0, 0];
  v.bar.max = Math.max(1, total);
  v.bar.value = Math.min(done, Math.max(1, total));
  v.statusText.textContent = statusLine(status, m.get("phase"), done, total);
  v.root.dataset.status = status;
  const running = v.busy();
  v.runButton.disabled = running || !v.fieldError.hidden; // a field shows text Python refused
  v.stopButton.disabled = !running;
  for (const node of [v.source, v.target, v.seed, v.steps, v.guidance, v.scheduler, v.kind, v.baseline, v.loadInput, v.imageInput,
    v.invertMethod, v.clearImage]) {
    node.disabled = running;
  }
  v.jsonButton.disabled = !m.get("spec_json");
  v.gifButton.disabled = running || !(m.get("images") || []).length;
  showResultState(v);
}

/** Give back the object URLs of the result images. */
export function revokeImageUrls(v) {
  for (const u of v.urls) v.win.URL.revokeObjectURL(u);
  v.urls = [];
}

const SETTINGS = ["source", "target", "seed", "steps", "guidance", "scheduler", "kind", "reweight", "blend_words", "blend_threshold",
  "windows", "baseline", "invert_method", "input_name"];

/** What the shown results depend on (the panel's settings), to tell when they are outdated. */
export function settingsKey(v) {
  return JSON.stringify(SETTINGS.map((k) => v.model.get(k) ?? null));
}

/**
 * The state of the shown results, on the results box (data-state) and in words above them:
 * running, stopped (unfinished images, the source still noise), failed, or outdated (the
 * settings changed since they were made).
 */
export function showResultState(v) {
  const m = v.model;
  const status = m.get("status") || "idle";
  const has = v.results.querySelector(".p2p-studio__image") !== null;
  const [done, total] = m.get("progress") || [0, 0];
  let state = "";
  let text = "";
  if (status === "running" || status === "stopping") {
    state = "running";
    text = has ? "Running: these are the previous results; the new ones replace them when the run ends." : "";
  } else if (status === "error") {
    state = "failed";
    text = has ? "The last run failed: these are the results of the run before it." : "";
  } else if (has && v.resultKey !== null && v.resultKey !== settingsKey(v)) {
    state = "outdated";
    text = "Outdated: the settings changed since these images were made. Run to update them.";
  } else if (status === "stopped" && has) {
    state = "stopped";
    text = `Stopped at step ${done} of ${total}: the images are unfinished (the source is still mostly noise).`;
  }
  v.results.dataset.state = state;
  // each unfinished image of a stopped run says so in its caption (the source is decoded noise)
  for (const figure of v.results.querySelectorAll(".p2p-studio__image")) {
    const base = figure.dataset.label || "";
    const unfinished = status === "stopped" && !/stopped|input/.test(base);
    figure.querySelector("figcaption span").textContent = unfinished
      ? `${base} (stopped at step ${done}/${total}: unfinished)`
      : base;
  }
  v.resultNote.textContent = text;
  v.resultNote.hidden = text === "";
}

function imageFigure(v, item, k) {
  const el = v.el;
  const url = v.win.URL.createObjectURL(new Blob([asBytes(item.png)], { type: "image/png" }));
  v.urls.push(url);
  const label = String(item.label || "");
  const save = button(el, "p2p-studio__save", "PNG", {
    dataset: { index: k },
    "aria-label": `save the ${item.label} image as PNG`,
  });
  return el("figure", { class: "p2p-studio__image", dataset: { label } }, [
    el("img", { src: url, alt: String(item.label || `image ${k}`) }),
    el("figcaption", {}, [el("span", { text: label }), save]),
  ]);
}

/** The result images from their PNG bytes, a save button each. */
export function showImages(v) {
  revokeImageUrls(v);
  v.results.replaceChildren();
  const images = v.model.get("images") || [];
  images.forEach((item, k) => {
    if (item && item.png) v.results.append(imageFigure(v, item, k));
  });
  v.resultKey = images.length ? settingsKey(v) : null; // new results are of the current settings
  showStatus(v);
}
