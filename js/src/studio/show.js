// Showing the model in the panel: values of the controls, the schedule, reweight rows, LocalBlend
// chips, status and progress, and the result images.
import { button } from "../../lib/dom.js";
import { asBytes } from "../../lib/pixels.js";
import { input } from "./layout.js";
import { formatWeight, statusLine } from "./format.js";

/** @typedef {import("./view.js").StudioView} StudioView */

/** The settings' values (a focused prompt field keeps what is being typed). */
export function showValues(v) {
  const m = v.model;
  v.modelName.textContent = m.get("model_name") ? `· ${m.get("model_name")}` : "";
  if (v.doc.activeElement !== v.source) v.source.value = m.get("source") ?? "";
  if (v.doc.activeElement !== v.target) v.target.value = m.get("target") ?? "";
  v.seed.value = String(m.get("seed") ?? 0);
  v.steps.value = String(m.get("steps") ?? 1);
  v.guidance.value = String(m.get("guidance") ?? 0);
  v.kind.value = m.get("kind") || "auto";
  v.baseline.checked = m.get("baseline") === true;
  v.invertMethod.value = m.get("invert_method") || "null-text";
  v.threshold.value = String(m.get("blend_threshold") ?? 0.3);
  v.thresholdOut.textContent = Number(v.threshold.value).toFixed(2);
}

/** The end of the cross and self-attention windows (hidden when an AlphaTimeline is shown). */
export function showSchedule(v) {
  v.schedule.hidden = v.model.get("has_timeline") === true;
  const w = v.model.get("windows") || {};
  const n = v.model.get("steps") || 1;
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

/** One slider per word of the target. */
export function showReweight(v) {
  const words = v.model.get("target_words") || [];
  const values = v.model.get("reweight") || {};
  v.reweightRows.replaceChildren(...words.map((word) => weightRow(v, word, word in values ? values[word] : 1)));
  v.reweightBox.hidden = words.length === 0;
}

/** One toggle chip per word of either prompt. */
export function showBlend(v) {
  const words = [...new Set([...(v.model.get("source_words") || []), ...(v.model.get("target_words") || [])])];
  const chosen = new Set(v.model.get("blend_words") || []);
  v.blendChips.replaceChildren(
    ...words.map((word) =>
      button(v.el, "p2p-studio__chip", word, { dataset: { word }, "aria-pressed": chosen.has(word) ? "true" : "false" })
    )
  );
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
  v.runButton.disabled = running;
  v.stopButton.disabled = !running;
  for (const node of [v.source, v.target, v.seed, v.steps, v.guidance, v.kind, v.baseline, v.loadInput, v.imageInput,
    v.invertMethod, v.clearImage]) {
    node.disabled = running;
  }
  v.jsonButton.disabled = !m.get("spec_json");
  v.gifButton.disabled = running || !(m.get("images") || []).length;
}

/** Give back the object URLs of the result images. */
export function revokeImageUrls(v) {
  for (const u of v.urls) v.win.URL.revokeObjectURL(u);
  v.urls = [];
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
  (v.model.get("images") || []).forEach((item, k) => {
    if (item && item.png) v.results.append(imageFigure(v, item, k));
  });
  showStatus(v);
}
