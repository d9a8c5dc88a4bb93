// Studio panel front end: prompts, sampling settings, reweight sliders, LocalBlend words,
// Run/Stop with progress, the result images and the exports. Python validates every write and
// runs everything; this view only edits traits (committed on change) and sends actions.
import "../lib/common.css"; // the error banner and screen-reader-only classes
import "./studio.css";
import { downloadBytes } from "../lib/download.js";
import { mountErrorBanner } from "../lib/error_banner.js";
import { asBytes } from "../lib/pixels.js";

const STATUS_TEXT = {
  idle: "ready",
  running: "running",
  stopping: "stopping…",
  done: "done",
  stopped: "stopped early",
  error: "failed (see the message above)",
};

function el(doc, tag, className, text) {
  const node = doc.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function field(doc, labelText, input, className) {
  const label = el(doc, "label", `p2p-studio__field ${className || ""}`.trim());
  label.append(el(doc, "span", "p2p-studio__label", labelText), input);
  return label;
}

function input(doc, type, className, attrs = {}) {
  const node = el(doc, "input", className);
  node.type = type;
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  return node;
}

/** A button that submits nothing, styled by common.css's .p2p-btn. */
function button(doc, className, text) {
  const node = el(doc, "button", `p2p-btn ${className}`, text);
  node.type = "button";
  return node;
}

/** A <select> of [value, text] options. */
function select(doc, className, ariaLabel, options) {
  const node = el(doc, "select", className);
  node.setAttribute("aria-label", ariaLabel);
  for (const [value, text] of options) {
    const o = el(doc, "option", "", text);
    o.value = value;
    node.append(o);
  }
  return node;
}

/** Reweight value shown next to a slider. */
export function formatWeight(v) {
  return (Math.round(v * 10) / 10).toFixed(1);
}

export default () => ({
  initialize({ model }) {
    // downloads are answered once per model, not once per view
    const onMessage = (msg, buffers) => {
      if (!msg || msg.type !== "download") return;
      try {
        if (!buffers || buffers.length !== 1) throw new TypeError("a download carries one buffer");
        downloadBytes(globalThis.document, buffers[0], msg.name, msg.mime);
      } catch (err) {
        model.send({ type: "client_error", message: `download: ${err.message}` });
      }
    };
    model.on("msg:custom", onMessage);
    return () => model.off("msg:custom", onMessage);
  },

  render({ model, el: host }) {
    const doc = host.ownerDocument;
    const win = doc.defaultView || globalThis;
    const root = el(doc, "div", "p2p-studio");
    root.setAttribute("data-lm-suppress-shortcuts", "true");
    root.setAttribute("role", "group");
    root.setAttribute("aria-label", "Prompt-to-Prompt studio");

    const header = el(doc, "div", "p2p-studio__header");
    header.append(el(doc, "span", "p2p-studio__title", "P2P Studio"));
    const modelName = el(doc, "span", "p2p-studio__model");
    header.append(modelName);

    // prompts
    const source = input(doc, "text", "p2p-studio__source", { "aria-label": "source prompt", spellcheck: "false" });
    const target = input(doc, "text", "p2p-studio__target", { "aria-label": "target prompt", spellcheck: "false" });
    const prompts = el(doc, "div", "p2p-studio__prompts");
    prompts.append(field(doc, "Source", source), field(doc, "Target", target));

    // sampling settings
    const seed = input(doc, "number", "p2p-studio__seed", { min: 0, step: 1, "aria-label": "seed" });
    const steps = input(doc, "number", "p2p-studio__steps", { min: 1, max: 1000, step: 1, "aria-label": "steps" });
    const guidance = input(doc, "number", "p2p-studio__guidance", { min: 0, max: 50, step: 0.5, "aria-label": "guidance" });
    const kind = select(doc, "p2p-studio__kind", "token alignment", [
      ["auto", "auto"],
      ["replace", "word swap (replace)"],
      ["refine", "refine (added words)"],
    ]);
    const baseline = input(doc, "checkbox", "p2p-studio__baseline");
    const settings = el(doc, "div", "p2p-studio__settings");
    const baselineLabel = el(doc, "label", "p2p-studio__field p2p-studio__check");
    const baselineText = doc.createTextNode(" also without P2P (same seed)");
    baselineLabel.append(baseline, baselineText);
    settings.append(field(doc, "Seed", seed), field(doc, "Steps", steps), field(doc, "Guidance", guidance),
      field(doc, "Alignment", kind), baselineLabel);

    // a real image to edit (optional): dropped here or chosen with the file button
    const realBox = el(doc, "fieldset", "p2p-studio__real");
    realBox.append(el(doc, "legend", "", "Real image (optional): drop a picture or choose a file; the source prompt is its caption"));
    const imageInput = input(doc, "file", "p2p-studio__image-file", { accept: "image/*", "aria-label": "image to edit" });
    const preview = el(doc, "img", "p2p-studio__input-preview");
    preview.alt = "the image to edit";
    const imageName = el(doc, "span", "p2p-studio__input-name");
    const invertMethod = select(doc, "p2p-studio__invert", "inversion method", [
      ["null-text", "null-text (best, slow)"],
      ["negative-prompt", "negative prompt (fast)"],
      ["ddim", "DDIM (plain)"],
    ]);
    const clearImage = button(doc, "p2p-studio__clear-image", "Remove image");
    realBox.append(imageInput, preview, imageName, field(doc, "Inversion", invertMethod), clearImage);
    let previewUrl = null;

    // schedule (only when no AlphaTimeline is shown)
    const schedule = el(doc, "div", "p2p-studio__schedule");
    const crossEnd = input(doc, "range", "p2p-studio__cross", { min: 0, step: 1, "aria-label": "cross-attention injection ends at step" });
    const selfEnd = input(doc, "range", "p2p-studio__self", { min: 0, step: 1, "aria-label": "self-attention injection ends at step" });
    const crossOut = el(doc, "output", "p2p-studio__value");
    const selfOut = el(doc, "output", "p2p-studio__value");
    schedule.append(field(doc, "Cross-attention until step", crossEnd), crossOut,
      field(doc, "Self-attention until step", selfEnd), selfOut);

    // reweight
    const reweightBox = el(doc, "fieldset", "p2p-studio__reweight");
    reweightBox.append(el(doc, "legend", "", "Reweight target words (1 = unchanged)"));
    const reweightRows = el(doc, "div", "p2p-studio__rows");
    reweightBox.append(reweightRows);

    // LocalBlend
    const blendBox = el(doc, "fieldset", "p2p-studio__blend");
    blendBox.append(el(doc, "legend", "", "LocalBlend: keep everything outside these words"));
    const blendChips = el(doc, "div", "p2p-studio__chips");
    blendChips.setAttribute("role", "group");
    blendChips.setAttribute("aria-label", "LocalBlend words");
    const threshold = input(doc, "range", "p2p-studio__threshold", { min: 0.05, max: 0.95, step: 0.05, "aria-label": "LocalBlend threshold" });
    const thresholdOut = el(doc, "output", "p2p-studio__value");
    blendBox.append(blendChips, field(doc, "Threshold", threshold), thresholdOut);

    // actions
    const actions = el(doc, "div", "p2p-studio__actions");
    const runButton = button(doc, "p2p-studio__run", "Run");
    const stopButton = button(doc, "p2p-studio__stop", "Stop");
    const bar = el(doc, "progress", "p2p-studio__progress");
    bar.max = 1;
    bar.value = 0;
    bar.setAttribute("aria-label", "run progress");
    const statusText = el(doc, "span", "p2p-studio__status");
    statusText.setAttribute("role", "status");
    statusText.setAttribute("aria-live", "polite");
    actions.append(runButton, stopButton, bar, statusText);

    // results and exports
    const results = el(doc, "div", "p2p-studio__results");
    const exportBar = el(doc, "div", "p2p-studio__export");
    const jsonButton = button(doc, "p2p-studio__json", "Export edit JSON");
    const gifButton = button(doc, "p2p-studio__gif", "Save playback GIF");
    const loadLabel = el(doc, "label", "p2p-studio__load");
    const loadInput = input(doc, "file", "p2p-studio__file", { accept: ".json,application/json" });
    loadLabel.append(doc.createTextNode("Load edit JSON "), loadInput);
    exportBar.append(jsonButton, gifButton, loadLabel);

    root.append(header, prompts, settings, realBox, schedule, reweightBox, blendBox, actions, results, exportBar);
    host.appendChild(root);
    const removeBanner = mountErrorBanner(model, root);

    let urls = [];
    const commit = (changes) => {
      for (const [k, v] of Object.entries(changes)) model.set(k, v);
      model.save_changes();
    };
    const busy = () => ["running", "stopping"].includes(model.get("status"));

    function showValues() {
      modelName.textContent = model.get("model_name") ? `· ${model.get("model_name")}` : "";
      if (doc.activeElement !== source) source.value = model.get("source") ?? "";
      if (doc.activeElement !== target) target.value = model.get("target") ?? "";
      seed.value = String(model.get("seed") ?? 0);
      steps.value = String(model.get("steps") ?? 1);
      guidance.value = String(model.get("guidance") ?? 0);
      kind.value = model.get("kind") || "auto";
      baseline.checked = model.get("baseline") === true;
      invertMethod.value = model.get("invert_method") || "null-text";
      threshold.value = String(model.get("blend_threshold") ?? 0.3);
      thresholdOut.textContent = Number(threshold.value).toFixed(2);
    }

    function showSchedule() {
      schedule.hidden = model.get("has_timeline") === true;
      const w = model.get("windows") || {};
      const n = model.get("steps") || 1;
      for (const [node, out, key] of [
        [crossEnd, crossOut, "cross"],
        [selfEnd, selfOut, "self_attn"],
      ]) {
        node.max = String(n);
        node.value = String((w[key] || [0, 0])[1]);
        out.textContent = `${node.value} / ${n}`;
      }
    }

    function showReweight() {
      const words = model.get("target_words") || [];
      const values = model.get("reweight") || {};
      reweightRows.replaceChildren();
      for (const word of words) {
        const row = el(doc, "div", "p2p-studio__weight");
        row.dataset.word = word;
        const slider = input(doc, "range", "p2p-studio__slider", { min: -2, max: 4, step: 0.1, "aria-label": `weight of ${word}` });
        const value = word in values ? values[word] : 1;
        slider.value = String(value);
        const out = el(doc, "output", "p2p-studio__value", formatWeight(value));
        const reset = button(doc, "p2p-studio__reset", "1");
        reset.title = `reset ${word} to 1`;
        reset.setAttribute("aria-label", `reset the weight of ${word} to 1`);
        reset.dataset.word = word;
        row.append(el(doc, "span", "p2p-studio__word", word), slider, out, reset);
        if (value !== 1) row.classList.add("p2p-studio__weight--set");
        reweightRows.append(row);
      }
      reweightBox.hidden = words.length === 0;
    }

    function showBlend() {
      const words = [...new Set([...(model.get("source_words") || []), ...(model.get("target_words") || [])])];
      const chosen = new Set(model.get("blend_words") || []);
      blendChips.replaceChildren();
      for (const word of words) {
        const chip = button(doc, "p2p-studio__chip", word);
        chip.dataset.word = word;
        chip.setAttribute("aria-pressed", chosen.has(word) ? "true" : "false");
        blendChips.append(chip);
      }
    }

    function showInputImage() {
      if (previewUrl) win.URL.revokeObjectURL(previewUrl);
      previewUrl = null;
      const png = model.get("input_image");
      const bytes = png ? asBytes(png) : new Uint8Array(0);
      const has = bytes.length > 0;
      if (has) {
        previewUrl = win.URL.createObjectURL(new Blob([bytes], { type: "image/png" }));
        preview.src = previewUrl;
      } else {
        preview.removeAttribute("src");
      }
      preview.hidden = !has;
      clearImage.hidden = !has;
      imageName.textContent = has ? String(model.get("input_name") || "") : "none: images come from the seed";
      root.dataset.image = has ? "yes" : "no";
      seed.title = has ? "not used: the edit starts from the inverted image" : "";
      baselineText.textContent = has ? " also without P2P (same inverted noise)" : " also without P2P (same seed)";
    }

    function sendImage(file) {
      if (!file) return;
      file.arrayBuffer().then(
        (buffer) => model.send({ type: "image", name: file.name }, undefined, [buffer]),
        (err) => model.send({ type: "client_error", message: `could not read ${file.name}: ${err.message}` }),
      );
    }

    function showStatus() {
      const status = model.get("status") || "idle";
      const [done, total] = model.get("progress") || [0, 0];
      bar.max = Math.max(1, total);
      bar.value = Math.min(done, Math.max(1, total));
      let text = STATUS_TEXT[status] || status;
      const phase = model.get("phase");
      if (phase && (status === "running" || status === "stopping")) text += ` · ${phase}`;
      if ((status === "running" || status === "stopping" || status === "stopped") && total) text += ` · step ${done}/${total}`;
      statusText.textContent = text;
      root.dataset.status = status;
      const running = busy();
      runButton.disabled = running;
      stopButton.disabled = !running;
      for (const node of [source, target, seed, steps, guidance, kind, baseline, loadInput, imageInput, invertMethod, clearImage]) {
        node.disabled = running;
      }
      jsonButton.disabled = !model.get("spec_json");
      gifButton.disabled = running || !(model.get("images") || []).length;
    }

    function showImages() {
      for (const u of urls) win.URL.revokeObjectURL(u);
      urls = [];
      results.replaceChildren();
      (model.get("images") || []).forEach((item, k) => {
        if (!item || !item.png) return;
        const bytes = asBytes(item.png);
        const url = win.URL.createObjectURL(new Blob([bytes], { type: "image/png" }));
        urls.push(url);
        const fig = el(doc, "figure", "p2p-studio__image");
        fig.dataset.label = String(item.label || "");
        const img = el(doc, "img");
        img.src = url;
        img.alt = String(item.label || `image ${k}`);
        const save = button(doc, "p2p-studio__save", "PNG");
        save.dataset.index = String(k);
        save.setAttribute("aria-label", `save the ${item.label} image as PNG`);
        const cap = el(doc, "figcaption");
        cap.append(el(doc, "span", "", String(item.label || "")), save);
        fig.append(img, cap);
        results.append(fig);
      });
      showStatus();
    }

    // -- events --
    const onChange = (e) => {
      const t = e.target;
      if (t === source) commit({ source: source.value });
      else if (t === target) commit({ target: target.value });
      else if (t === seed) commit({ seed: Number.parseInt(seed.value, 10) });
      else if (t === steps) commit({ steps: Number.parseInt(steps.value, 10) });
      else if (t === guidance) commit({ guidance: Number.parseFloat(guidance.value) });
      else if (t === kind) commit({ kind: kind.value });
      else if (t === baseline) commit({ baseline: baseline.checked });
      else if (t === invertMethod) commit({ invert_method: invertMethod.value });
      else if (t === imageInput && imageInput.files && imageInput.files[0]) {
        sendImage(imageInput.files[0]);
        imageInput.value = "";
      }
      else if (t === threshold) commit({ blend_threshold: Number(threshold.value) });
      else if (t === crossEnd || t === selfEnd) {
        const w = model.get("windows") || {};
        const key = t === crossEnd ? "cross" : "self_attn";
        const start = (w[key] || [0, 0])[0];
        commit({ windows: { ...w, [key]: [Math.min(start, Number(t.value)), Number(t.value)] } });
      } else if (t.classList && t.classList.contains("p2p-studio__slider")) {
        const word = t.closest(".p2p-studio__weight").dataset.word;
        const values = { ...(model.get("reweight") || {}) };
        const v = Math.round(Number(t.value) * 10) / 10;
        if (v === 1) delete values[word];
        else values[word] = v;
        commit({ reweight: values });
      } else if (t === loadInput && loadInput.files && loadInput.files[0]) {
        const file = loadInput.files[0];
        file.text().then(
          (text) => model.send({ type: "load_spec", text }),
          (err) => model.send({ type: "client_error", message: `could not read ${file.name}: ${err.message}` }),
        );
        loadInput.value = "";
      }
    };
    const onInput = (e) => {
      const t = e.target;
      if (t === threshold) thresholdOut.textContent = Number(threshold.value).toFixed(2);
      else if (t === crossEnd) crossOut.textContent = `${crossEnd.value} / ${model.get("steps")}`;
      else if (t === selfEnd) selfOut.textContent = `${selfEnd.value} / ${model.get("steps")}`;
      else if (t.classList && t.classList.contains("p2p-studio__slider")) {
        t.parentElement.querySelector("output").textContent = formatWeight(Number(t.value));
      }
    };
    const onClick = (e) => {
      const t = e.target;
      if (!(t instanceof win.Element)) return;
      if (t === runButton) {
        model.send({ type: "run" });
        return;
      }
      if (t === stopButton) {
        model.send({ type: "stop" });
        return;
      }
      if (t === jsonButton) {
        const text = model.get("spec_json");
        if (text) downloadBytes(doc, text, "p2p_edit.json", "application/json");
        return;
      }
      if (t === gifButton) {
        model.send({ type: "export_gif" });
        return;
      }
      if (t === clearImage) {
        model.send({ type: "clear_image" });
        return;
      }
      const save = t.closest(".p2p-studio__save");
      if (save) {
        const item = (model.get("images") || [])[Number(save.dataset.index)];
        if (item && item.png) downloadBytes(doc, item.png, String(item.name || "image.png"), "image/png");
        return;
      }
      const reset = t.closest(".p2p-studio__reset");
      if (reset) {
        const values = { ...(model.get("reweight") || {}) };
        delete values[reset.dataset.word];
        commit({ reweight: values });
        return;
      }
      const chip = t.closest(".p2p-studio__chip");
      if (chip && !busy()) {
        const chosen = [...(model.get("blend_words") || [])];
        const i = chosen.indexOf(chip.dataset.word);
        if (i >= 0) chosen.splice(i, 1);
        else chosen.push(chip.dataset.word);
        commit({ blend_words: chosen });
      }
    };
    const onKey = (e) => {
      if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
        e.preventDefault();
        e.stopPropagation();
        if (e.target === source || e.target === target) e.target.dispatchEvent(new win.Event("change", { bubbles: true }));
        if (!busy()) model.send({ type: "run" });
      }
    };
    const onDragOver = (e) => {
      if (busy()) return;
      e.preventDefault(); // allows the drop
      realBox.classList.add("p2p-studio__real--over");
    };
    const onDragLeave = () => realBox.classList.remove("p2p-studio__real--over");
    const onDrop = (e) => {
      e.preventDefault();
      realBox.classList.remove("p2p-studio__real--over");
      const files = e.dataTransfer && e.dataTransfer.files;
      if (!busy() && files && files.length) sendImage(files[0]);
    };
    realBox.addEventListener("dragover", onDragOver);
    realBox.addEventListener("dragleave", onDragLeave);
    realBox.addEventListener("drop", onDrop);
    root.addEventListener("change", onChange);
    root.addEventListener("input", onInput);
    root.addEventListener("click", onClick);
    root.addEventListener("keydown", onKey);

    const handlers = [
      ["change:source", showValues],
      ["change:target", showValues],
      ["change:seed", showValues],
      ["change:steps", () => (showValues(), showSchedule())],
      ["change:guidance", showValues],
      ["change:kind", showValues],
      ["change:baseline", showValues],
      ["change:invert_method", showValues],
      ["change:input_image", showInputImage],
      ["change:input_name", showInputImage],
      ["change:phase", showStatus],
      ["change:blend_threshold", showValues],
      ["change:model_name", showValues],
      ["change:windows", showSchedule],
      ["change:has_timeline", showSchedule],
      ["change:target_words", () => (showReweight(), showBlend())],
      ["change:source_words", showBlend],
      ["change:reweight", showReweight],
      ["change:blend_words", showBlend],
      ["change:status", showStatus],
      ["change:progress", showStatus],
      ["change:spec_json", showStatus],
      ["change:images", showImages],
    ];
    for (const [event, fn] of handlers) model.on(event, fn);
    showValues();
    showSchedule();
    showReweight();
    showBlend();
    showImages();
    showInputImage();

    return () => {
      for (const [event, fn] of handlers) model.off(event, fn);
      root.removeEventListener("change", onChange);
      root.removeEventListener("input", onInput);
      root.removeEventListener("click", onClick);
      root.removeEventListener("keydown", onKey);
      realBox.removeEventListener("dragover", onDragOver);
      realBox.removeEventListener("dragleave", onDragLeave);
      realBox.removeEventListener("drop", onDrop);
      for (const u of urls) win.URL.revokeObjectURL(u);
      if (previewUrl) win.URL.revokeObjectURL(previewUrl);
      removeBanner();
      root.remove();
    };
  },
});
