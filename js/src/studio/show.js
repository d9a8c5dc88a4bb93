// Showing the model in the panel: values of the controls, the changed words, the schedule,
// reweight rows and LocalBlend chips (changed words first), status and progress, and the state of
// the shown results.
import { button } from "../../lib/dom.js";
import { input } from "./layout.js";
import { keptText, refused } from "./errors.js";
import { formatWeight, statusLine } from "./format.js";
import { needsImage, showMethod } from "./methods.js";
import { showImages } from "./results.js";
import { showTabs } from "./tabs.js";
import { diffParts, diffSentence, moreText, offerWords } from "./words.js";

/** @typedef {import("./view.js").StudioView} StudioView */

/** The settings' values (a focused prompt field keeps what is being typed). */
export function showValues(v) {
  const m = v.model;
  v.modelName.textContent = m.get("model_name") ? `· ${m.get("model_name")}` : "";
  // a field Python rejected keeps the typed text (to fix it). A focused prompt keeps what is being
  // typed while the kernel answers what it sent (keys typed after Enter must not be lost to the
  // answer; the next change commits them), but takes a value the kernel set itself (a loaded edit):
  // left showing the old text, leaving the field would write that text over the loaded prompt.
  const show = (node, key, value) => {
    const kept = keptText(v, key);
    if ((key === "source" || key === "target") && v.doc.activeElement === node) {
      if (kept !== undefined || refused(v, key) || value === v.shown[key]) return;
    }
    node.value = kept !== undefined ? kept : value;
    v.shown[key] = value;
  };
  show(v.source, "source", m.get("source") ?? "");
  show(v.target, "target", m.get("target") ?? "");
  show(v.seed, "seed", String(m.get("seed") ?? 0));
  show(v.steps, "steps", String(m.get("steps") ?? 1));
  show(v.guidance, "guidance", String(m.get("guidance") ?? 0));
  showChoices(v, v.scheduler, "scheduler_choices");
  v.scheduler.value = m.get("scheduler") || "DDIMScheduler";
  v.kind.value = m.get("kind") || "auto";
  v.baseline.checked = m.get("baseline") === true;
  showChoices(v, v.invertMethod, "invert_choices");
  v.invertMethod.value = m.get("invert_method") || "";
  v.threshold.value = String(m.get("blend_threshold") ?? 0.3);
  v.thresholdOut.textContent = Number(v.threshold.value).toFixed(2);
  showMethod(v);
  showTabs(v);
}

/** A menu's options as Python lists them in trait `trait` ([[name, label], ...]: the model's
 * schedulers, its inversions); rebuilt only when they change. */
function showChoices(v, select, trait) {
  const choices = v.model.get(trait) || [];
  const key = JSON.stringify(choices);
  if (select.dataset.choices === key) return;
  select.replaceChildren(...choices.map(([value, text]) => v.el("option", { value, text })));
  select.dataset.choices = key;
}

/** The changed words under the prompts (removed ones struck, added ones marked), as text; a
 * screen reader gets the same as one sentence. */
export function showDiff(v) {
  const changed = v.model.get("changed_words") || {};
  const nodes = diffParts(changed).map(([kind, text]) =>
    kind === "text" ? v.el.text(text) : v.el(kind, { class: `p2p-studio__diff-${kind}`, text }),
  );
  v.diff.replaceChildren(
    v.el("span", { class: "p2p-sr-only", text: diffSentence(changed) }),
    v.el("span", { "aria-hidden": "true" }, nodes),
  );
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

/** Mark the changed words, hide the rest unless asked for, and label the toggle. */
function offer(v, parent, toggle, offered, expanded, changed) {
  for (const node of parent.children) {
    node.hidden = !offered.shown.has(node.dataset.word);
    node.classList.toggle("p2p-studio__changed", changed.has(node.dataset.word));
  }
  const extra = parent.children.length - offered.order.filter((w) => changed.has(w)).length;
  toggle.hidden = changed.size === 0 || extra === 0;
  toggle.setAttribute("aria-expanded", expanded ? "true" : "false");
  toggle.textContent = moreText(expanded, offered.hiddenCount);
}

/** One slider per word of the target, the changed words first (rows are updated in place, so a focused slider keeps focus). */
export function showReweight(v) {
  const words = v.model.get("target_words") || [];
  const values = v.model.get("reweight") || {};
  const changed = (v.model.get("changed_words") || {}).target || [];
  const offered = offerWords(words, changed, Object.keys(values), v.more.weights);
  const valueOf = (word) => (word in values ? values[word] : 1);
  if (sameWords(v.reweightRows, offered.order)) {
    for (const row of v.reweightRows.children) setWeight(row, valueOf(row.dataset.word));
  } else {
    v.reweightRows.replaceChildren(...offered.order.map((word) => weightRow(v, word, valueOf(word))));
  }
  offer(v, v.reweightRows, v.moreWeights, offered, v.more.weights, new Set(changed));
  v.reweightBox.hidden = words.length === 0;
}

/** One toggle chip per word of either prompt, the changed words first (kept in place when the words stay the same). */
export function showBlend(v) {
  const words = [...new Set([...(v.model.get("source_words") || []), ...(v.model.get("target_words") || [])])];
  const chosen = new Set(v.model.get("blend_words") || []);
  const c = v.model.get("changed_words") || {};
  const changed = [...new Set([...(c.source || []), ...(c.target || [])])];
  const offered = offerWords(words, changed, chosen, v.more.chips);
  if (!sameWords(v.blendChips, offered.order)) {
    v.blendChips.replaceChildren(...offered.order.map((word) => button(v.el, "p2p-studio__chip", word, { dataset: { word } })));
  }
  for (const chip of v.blendChips.children) chip.setAttribute("aria-pressed", chosen.has(chip.dataset.word) ? "true" : "false");
  offer(v, v.blendChips, v.moreChips, offered, v.more.chips, new Set(changed));
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
  // a field shows text Python refused, or the method needs an image first: nothing to run
  v.runButton.disabled = running || !v.fieldError.hidden || needsImage(v);
  v.stopButton.disabled = !running;
  const locked = [v.source, v.target, v.seed, v.steps, v.guidance, v.scheduler, v.kind, v.baseline, v.loadInput, v.imageInput,
    v.invertMethod, v.clearImage, v.methodSelect, v.combine, ...v.params.querySelectorAll("input, select")];
  for (const node of locked) node.disabled = running;
  v.jsonButton.disabled = !m.get("spec_json");
  v.gifButton.disabled = running || !(m.get("images") || []).length;
  showResultState(v);
}

const SETTINGS = ["source", "target", "seed", "steps", "guidance", "scheduler", "kind", "reweight", "blend_words", "blend_threshold",
  "windows", "baseline", "invert_method", "input_name", "method", "method_values", "combine_p2p"];

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
    text = has ? "The last run failed: these are the results of the run before it." : "The run failed: the message in red says why.";
  } else if (has && v.resultKey !== null && v.resultKey !== settingsKey(v)) {
    state = "outdated";
    text = "Outdated: the settings changed since these images were made. Run to update them.";
  } else if (status === "stopped" && has) {
    state = "stopped";
    text = `Stopped at step ${done} of ${total}: the images are unfinished (the source is still mostly noise).`;
  }
  v.results.dataset.state = state;
  v.root.dataset.results = state;
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

/** New result images: they are of the current settings. */
export function showResults(v) {
  showImages(v);
  v.resultKey = (v.model.get("images") || []).length ? settingsKey(v) : null;
  showStatus(v);
}
