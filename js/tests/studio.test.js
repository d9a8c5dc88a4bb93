// @vitest-environment happy-dom
import { afterEach, describe, expect, it } from "vitest";
import * as studioModule from "../src/studio.js";
import { FakeModel, instantiate } from "./fake-model.js";

const mounted = [];

function state(extra = {}) {
  return {
    source: "a red cat", target: "a blue dog", seed: 0, steps: 10, guidance: 5, kind: "auto",
    windows: { cross: [0, 8], self_attn: [0, 4], words: [], blend_start: 2 }, reweight: {}, blend_words: [],
    blend_threshold: 0.3, baseline: false, source_words: ["a", "red", "cat"], target_words: ["a", "blue", "dog"],
    has_aligner: true, has_timeline: false, status: "idle", progress: [0, 0], images: [], spec_json: "",
    model_name: "pocket model", ...extra,
  };
}

async function mount(extra = {}) {
  const widget = await instantiate(studioModule);
  const model = new FakeModel(state(extra));
  const stopInit = await widget.initialize({ model });
  const el = document.createElement("div");
  document.body.appendChild(el);
  const stopRender = await widget.render({ model, el });
  mounted.push(el);
  return { model, el, stopInit, stopRender };
}

const q = (el, sel) => el.querySelector(sel);
/** Several traits in one update, as Backbone applies a message: all set, then one change event each. */
function batch(model, changes) {
  const old = Object.fromEntries(Object.keys(changes).map((k) => [k, model.get(k)]));
  Object.assign(model.state, changes);
  for (const k of Object.keys(changes)) if (old[k] !== changes[k]) model.emit(`change:${k}`, changes[k]);
}
function change(node, value) {
  if (value !== undefined) node.value = value;
  node.dispatchEvent(new Event("change", { bubbles: true }));
}

afterEach(() => {
  for (const el of mounted.splice(0)) el.remove();
});

describe("studio panel", () => {
  it("shows the settings and commits edits on change", async () => {
    const { el, model } = await mount();
    expect(q(el, ".p2p-studio__source").value).toBe("a red cat");
    expect(q(el, ".p2p-studio__steps").value).toBe("10");
    change(q(el, ".p2p-studio__target"), "a blue bird");
    change(q(el, ".p2p-studio__seed"), "42");
    change(q(el, ".p2p-studio__guidance"), "7.5");
    change(q(el, ".p2p-studio__kind"), "refine");
    const baseline = q(el, ".p2p-studio__baseline");
    baseline.checked = true;
    change(baseline);
    expect([model.get("target"), model.get("seed"), model.get("guidance"), model.get("kind"), model.get("baseline")]).toEqual(
      ["a blue bird", 42, 7.5, "refine", true],
    );
    // each edit is one "write" message (in order with the actions), never a state save
    expect(model.sent.map((m) => m.content)).toEqual([
      { type: "write", state: { target: "a blue bird" } },
      { type: "write", state: { seed: 42 } },
      { type: "write", state: { guidance: 7.5 } },
      { type: "write", state: { kind: "refine" } },
      { type: "write", state: { baseline: true } },
    ]);
    expect(model.saves).toBe(0);
  });

  it("offers the schedulers Python lists and counts the schedule in UNet evaluations", async () => {
    const choices = [["DDIMScheduler", "DDIM"], ["HeunDiscreteScheduler", "Heun (2 evaluations a step)"]];
    const { el, model } = await mount({ scheduler: "DDIMScheduler", scheduler_choices: choices, n_evals: 10 });
    const select = q(el, ".p2p-studio__scheduler");
    expect([...select.options].map((o) => [o.value, o.textContent])).toEqual(choices);
    change(select, "HeunDiscreteScheduler");
    expect(model.get("scheduler")).toBe("HeunDiscreteScheduler");
    model.set("n_evals", 19); // what Python computes for Heun at 10 steps
    expect(q(el, ".p2p-studio__cross").max).toBe("19");
    expect(q(el, ".p2p-studio__value").textContent).toBe("8 / 19");
  });

  it("has a reweight slider per target word; 1 removes the word", async () => {
    const { el, model } = await mount({ reweight: { dog: 2 } });
    const rows = [...el.querySelectorAll(".p2p-studio__weight")];
    expect(rows.map((r) => r.dataset.word)).toEqual(["a", "blue", "dog"]);
    expect(rows[2].querySelector("output").textContent).toBe("2.0");
    const blue = rows[1].querySelector("input");
    blue.value = "-1.5";
    blue.dispatchEvent(new Event("input", { bubbles: true }));
    expect(rows[1].querySelector("output").textContent).toBe("-1.5");
    change(blue);
    expect(model.get("reweight")).toEqual({ dog: 2, blue: -1.5 });
    el.querySelector('.p2p-studio__reset[data-word="dog"]').click();
    expect(model.get("reweight")).toEqual({ blue: -1.5 });
    const again = el.querySelector('.p2p-studio__weight[data-word="blue"] input');
    change(again, "1");
    expect(model.get("reweight")).toEqual({});
  });

  it("toggles LocalBlend words from both prompts", async () => {
    const { el, model } = await mount();
    const chips = [...el.querySelectorAll(".p2p-studio__chip")];
    expect(chips.map((c) => c.textContent)).toEqual(["a", "red", "cat", "blue", "dog"]);
    chips[2].click();
    expect(model.get("blend_words")).toEqual(["cat"]);
    el.querySelector('.p2p-studio__chip[data-word="dog"]').click();
    expect(model.get("blend_words")).toEqual(["cat", "dog"]);
    expect(el.querySelector('.p2p-studio__chip[data-word="cat"]').getAttribute("aria-pressed")).toBe("true");
    el.querySelector('.p2p-studio__chip[data-word="cat"]').click();
    expect(model.get("blend_words")).toEqual(["dog"]);
  });

  it("offers schedule sliders only without a timeline", async () => {
    const { el, model } = await mount();
    const schedule = q(el, ".p2p-studio__schedule");
    expect(schedule.hidden).toBe(false);
    change(q(el, ".p2p-studio__cross"), "5");
    expect(model.get("windows").cross).toEqual([0, 5]);
    model.set("has_timeline", true);
    expect(schedule.hidden).toBe(true);
  });

  it("Run and Stop send actions; controls lock while running and progress shows", async () => {
    const { el, model } = await mount();
    const run = q(el, ".p2p-studio__run");
    const stop = q(el, ".p2p-studio__stop");
    expect([run.disabled, stop.disabled]).toEqual([false, true]);
    run.click();
    expect(model.sent.at(-1).content).toEqual({ type: "run" });
    model.set("status", "running");
    model.set("progress", [3, 10]);
    expect([run.disabled, stop.disabled, q(el, ".p2p-studio__source").disabled]).toEqual([true, false, true]);
    expect(q(el, ".p2p-studio__status").textContent).toBe("running · step 3/10");
    expect(q(el, ".p2p-studio__progress").value).toBe(3);
    stop.click();
    expect(model.sent.at(-1).content).toEqual({ type: "stop" });
    model.set("status", "stopped");
    expect(q(el, ".p2p-studio__status").textContent).toBe("stopped early · step 3/10");
    expect(run.disabled).toBe(false);
  });

  it("Ctrl+Enter runs", async () => {
    const { el, model } = await mount();
    q(el, ".p2p-studio__target").dispatchEvent(new KeyboardEvent("keydown", { key: "Enter", ctrlKey: true, bubbles: true }));
    // the prompt being edited is written first, in the same ordered stream as the run
    expect(model.sent.map((m) => m.content.type)).toEqual(["write", "run"]);
  });

  it("shows result images from PNG bytes with a save button each", async () => {
    const { el, model } = await mount();
    const png = Uint8Array.from([137, 80, 78, 71, 13, 10, 26, 10]);
    const view = new DataView(png.buffer);
    model.set("images", [
      { label: "source", name: "source.png", png: view },
      { label: "edit", name: "edit.png", png: view },
    ]);
    const figs = [...el.querySelectorAll(".p2p-studio__image")];
    expect(figs.map((f) => f.dataset.label)).toEqual(["source", "edit"]);
    expect(figs[1].querySelector("img").getAttribute("src")).toMatch(/^blob:/);
    expect(figs[1].querySelector("img").alt).toBe("edit");
    expect(q(el, ".p2p-studio__gif").disabled).toBe(false);
  });

  it("exports JSON client-side and asks Python for the GIF", async () => {
    const { el, model } = await mount();
    const json = q(el, ".p2p-studio__json");
    expect(json.disabled).toBe(true);
    model.set("spec_json", '{"prompts": ["a", "b"]}');
    expect(json.disabled).toBe(false);
    let clicked = null;
    const orig = HTMLAnchorElement.prototype.click;
    HTMLAnchorElement.prototype.click = function () {
      clicked = { download: this.download, href: this.href };
    };
    try {
      json.click();
    } finally {
      HTMLAnchorElement.prototype.click = orig;
    }
    expect(clicked.download).toBe("p2p_edit.json");
    expect(clicked.href).toMatch(/^blob:/);
    model.set("images", [{ label: "edit", name: "edit.png", png: new DataView(new Uint8Array(4).buffer) }]);
    q(el, ".p2p-studio__gif").click();
    expect(model.sent.at(-1).content).toEqual({ type: "export_gif" });
  });

  it("a download message from Python saves once per model, and a bad one is reported", async () => {
    const { model } = await mount();
    let names = [];
    const orig = HTMLAnchorElement.prototype.click;
    HTMLAnchorElement.prototype.click = function () {
      names.push(this.download);
    };
    try {
      model.receive({ type: "download", name: "p2p_playback.gif", mime: "image/gif" }, [Uint8Array.from([71, 73, 70])]);
      model.receive({ type: "download", name: "../../etc/passwd", mime: "text/plain" }, [Uint8Array.from([1])]);
    } finally {
      HTMLAnchorElement.prototype.click = orig;
    }
    expect(names).toEqual(["p2p_playback.gif"]);
    expect(model.sent.at(-1).content.type).toBe("client_error");
    expect(model.sent.at(-1).content.message).toMatch(/unsafe file name/);
  });

  it("loads an edit JSON file by sending its text", async () => {
    const { el, model } = await mount();
    const input = q(el, ".p2p-studio__file");
    const file = new File(['{"format": "p2p_widgets.edit"}'], "edit.json", { type: "application/json" });
    Object.defineProperty(input, "files", { value: [file], configurable: true });
    change(input);
    await new Promise((r) => setTimeout(r, 20));
    expect(model.sent.at(-1).content).toEqual({ type: "load_spec", text: '{"format": "p2p_widgets.edit"}', name: "edit.json" });
  });

  it("shows errors in the banner and prompt text as text", async () => {
    const { el, model } = await mount({ model_name: "<b>x</b>" });
    model.set("error", "reweight: 'zebra' is not a word of the target");
    const banner = q(el, ".p2p-error");
    expect([banner.hidden, banner.textContent]).toEqual([false, "reweight: 'zebra' is not a word of the target"]);
    expect(q(el, ".p2p-studio__model").querySelector("b")).toBeNull();
  });

  it("sends a chosen or dropped image as bytes and shows the loaded one", async () => {
    const unet = [["null-text", "null-text (best, slow)"], ["negative-prompt", "negative prompt (fast)"], ["ddim", "DDIM (plain)"]];
    const { el, model } = await mount({
      invert_method: "null-text", invert_choices: unet, input_image: new Uint8Array(0), input_name: "",
    });
    expect(q(el, ".p2p-studio__input-preview").hidden).toBe(true);
    expect(q(el, ".p2p-studio__clear-image").hidden).toBe(true);
    const input = q(el, ".p2p-studio__image-file");
    const file = new File([new Uint8Array([137, 80, 78, 71])], "photo <b>.png", { type: "image/png" });
    Object.defineProperty(input, "files", { value: [file], configurable: true });
    change(input);
    await new Promise((r) => setTimeout(r, 20));
    const sent = model.sent.at(-1);
    expect(sent.content).toEqual({ type: "image", name: "photo <b>.png" });
    expect([...new Uint8Array(sent.buffers[0])]).toEqual([137, 80, 78, 71]);

    const drop = new Event("drop", { bubbles: true, cancelable: true });
    drop.dataTransfer = { files: [new File([new Uint8Array([1, 2])], "dropped.png")] };
    q(el, ".p2p-studio__real").dispatchEvent(drop);
    await new Promise((r) => setTimeout(r, 20));
    expect(drop.defaultPrevented).toBe(true);
    expect(model.sent.at(-1).content).toEqual({ type: "image", name: "dropped.png" });

    model.set("input_name", "photo <b>.png");
    model.set("input_image", new Uint8Array([137, 80, 78, 71]));
    expect(q(el, ".p2p-studio__input-preview").hidden).toBe(false);
    expect(q(el, ".p2p-studio__check").textContent).toBe(" also without P2P (same inverted noise)");
    expect(q(el, ".p2p-studio__input-name").textContent).toBe("photo <b>.png"); // text, never markup
    expect(q(el, ".p2p-studio__input-name").querySelector("b")).toBeNull();
    change(q(el, ".p2p-studio__invert"), "negative-prompt");
    expect(model.get("invert_method")).toBe("negative-prompt");
    q(el, ".p2p-studio__clear-image").click();
    expect(model.sent.at(-1).content).toEqual({ type: "clear_image" });
  });

  it("offers the inversions Python lists for the model, as text", async () => {
    const flow = [["fireflow", "FireFlow <b>best</b>"], ["rf-solver", "RF-Solver"], ["euler", "Euler (plain)"]];
    const { el, model } = await mount({ invert_method: "fireflow", invert_choices: flow });
    const menu = q(el, ".p2p-studio__invert");
    expect([...menu.options].map((o) => [o.value, o.textContent])).toEqual(flow);
    expect(menu.value).toBe("fireflow");
    expect(menu.querySelector("b")).toBeNull(); // labels are text, never markup
    change(menu, "rf-solver");
    expect(model.get("invert_method")).toBe("rf-solver");
    model.set("invert_choices", flow.slice(2)); // another model's menu: rebuilt
    model.set("invert_method", "euler");
    expect([...menu.options].map((o) => o.value)).toEqual(["euler"]);
    expect(menu.value).toBe("euler");
  });

  it("shows the inversion phase while running and locks the image controls", async () => {
    const { el, model } = await mount({ status: "running", progress: [3, 20], phase: "inverting (null-text)" });
    expect(q(el, ".p2p-studio__status").textContent).toBe("running · inverting (null-text) · step 3/20");
    expect(q(el, ".p2p-studio__image-file").disabled).toBe(true);
    expect(q(el, ".p2p-studio__invert").disabled).toBe(true);
    const drop = new Event("drop", { bubbles: true, cancelable: true });
    drop.dataTransfer = { files: [new File([new Uint8Array([1])], "late.png")] };
    q(el, ".p2p-studio__real").dispatchEvent(drop);
    await new Promise((r) => setTimeout(r, 20));
    expect(model.sent.filter((m) => m.content.type === "image")).toEqual([]);
  });

  it("builds a method's controls from its declared parameters and commits each as method_values", async () => {
    const masa = { name: "MutualSelfAttention", label: "MutualSelfAttention (MasaCtrl)", help: "MasaCtrl: <b>mutual</b>",
      follows_inversion: false, combinable: true, params: [
        { name: "start_step", kind: "int", default: 4, help: "first step", low: 0, high: null, choices: [], optional: false },
        { name: "end_step", kind: "int", default: null, help: "end", low: 0, high: null, choices: [], optional: true },
        { name: "share", kind: "float", default: 0.5, help: "share", low: 0, high: 1, choices: [], optional: false },
        { name: "union", kind: "bool", default: false, help: "both", low: null, high: null, choices: [], optional: false },
        { name: "mode", kind: "choice", default: "a", help: "", low: null, high: null, choices: ["a", "b"], optional: false },
        { name: "words", kind: "words", default: [], help: "", low: null, high: null, choices: [], optional: false },
      ] };
    const p2p = { name: "p2p", label: "Prompt-to-Prompt", help: "P2P", params: [], follows_inversion: false, combinable: false };
    const values = { start_step: 4, end_step: null, share: 0.5, union: false, mode: "a", words: [] };
    const { el, model } = await mount({ methods: [p2p, masa], method: "p2p", method_values: {} });
    const select = q(el, ".p2p-studio__method");
    expect([...select.options].map((o) => o.textContent)).toEqual(["Prompt-to-Prompt", "MutualSelfAttention (MasaCtrl)"]);
    expect(q(el, ".p2p-studio__params").hidden).toBe(true);
    change(select, "MutualSelfAttention");
    expect(model.get("method")).toBe("MutualSelfAttention");
    model.set("method_values", values); // what Python answers: the declared defaults
    const fields = [...el.querySelectorAll(".p2p-studio__param")].map((f) => f.dataset.param);
    expect(fields).toEqual(["start_step", "end_step", "share", "union", "mode", "words"]);
    expect(q(el, ".p2p-studio__method-help").textContent).toBe("MasaCtrl: <b>mutual</b>"); // text, never markup
    const start = q(el, '[data-param="start_step"] .p2p-studio__param-input');
    expect([start.type, start.value, start.min, start.step]).toEqual(["number", "4", "0", "1"]);
    expect(el.querySelector(`#${start.getAttribute("aria-describedby")}`).textContent).toBe("first step · whole number, at least 0");
    expect(q(el, '[data-param="share"] .p2p-studio__param-slider')).not.toBeNull();
    expect(q(el, '[data-param="union"] .p2p-studio__param-input').type).toBe("checkbox");
    expect(q(el, '[data-param="mode"] select')).not.toBeNull();
    expect(q(el, ".p2p-studio__p2p").hidden).toBe(true); // P2P's own settings are not part of this run
    change(start, "6");
    expect(model.get("method_values")).toEqual({ ...values, start_step: 6 });
    change(q(el, '[data-param="words"] .p2p-studio__param-input'), "cat, dog");
    expect(model.get("method_values").words).toEqual(["cat", "dog"]);
    const combine = q(el, ".p2p-studio__combine");
    combine.checked = true;
    change(combine);
    expect(model.get("combine_p2p")).toBe(true);
    expect(q(el, ".p2p-studio__p2p").hidden).toBe(false);
  });

  it("shows a refused parameter's error beside it, keeps the typed text, and says when a method needs an image", async () => {
    const pnp = { name: "PlugAndPlay", label: "PlugAndPlay", help: "", follows_inversion: true, combinable: true, params: [
      { name: "feature_until", kind: "float", default: 0.8, help: "share", low: 0, high: 1, choices: [], optional: false },
    ] };
    const { el, model } = await mount({ methods: [pnp], method: "PlugAndPlay", method_values: { feature_until: 0.8 },
      input_image: new Uint8Array(0) });
    const run = q(el, ".p2p-studio__run");
    expect(run.disabled).toBe(true); // nothing to follow yet
    expect(q(el, ".p2p-studio__method-note").textContent).toMatch(/follows the inversion of a real image/);
    const field = q(el, '[data-param="feature_until"] .p2p-studio__param-input');
    change(field, "1.5");
    batch(model, { error_field: "method_values.feature_until", // one message from Python
      error: "not applied: feature until must be from 0 to 1; 1.5 is not" });
    model.set("method_values", { feature_until: 0.8 }); // Python puts the value back
    const error = q(el, ".p2p-studio__field-error");
    expect(error.hidden).toBe(false);
    expect(error.closest("[data-param]").dataset.param).toBe("feature_until"); // right under its field
    expect(error.previousElementSibling.contains(field)).toBe(true);
    expect(field.value).toBe("1.5"); // the refused text stays to be fixed
    expect(field.getAttribute("aria-invalid")).toBe("true");
    expect(field.getAttribute("aria-describedby").split(" ")[0]).toBe(error.id);
    expect(q(el, ".p2p-error").hidden).toBe(true);
    batch(model, { error: "", error_field: "" });
    expect(field.getAttribute("aria-invalid")).toBe(null);
    expect(field.getAttribute("aria-describedby")).toBe(field.dataset.describedby); // back to its help
    model.set("input_image", new Uint8Array([137, 80, 78, 71]));
    expect(run.disabled).toBe(false);
  });

  it("offers the changed words first and the rest on request", async () => {
    const { el, model } = await mount({ changed_words: { source: ["red", "cat"], target: ["blue", "dog"] } });
    const shown = () => [...el.querySelectorAll(".p2p-studio__weight")].filter((r) => !r.hidden).map((r) => r.dataset.word);
    expect(shown()).toEqual(["blue", "dog"]);
    expect(q(el, ".p2p-studio__diff .p2p-sr-only").textContent).toBe("Changed words: red cat becomes blue dog.");
    expect([...el.querySelectorAll(".p2p-studio__diff ins")].map((n) => n.textContent)).toEqual(["blue", "dog"]);
    const more = q(el, ".p2p-studio__more-weights");
    expect([more.textContent, more.getAttribute("aria-expanded")]).toEqual(["all words (1 more)", "false"]);
    more.click();
    expect(shown()).toEqual(["blue", "dog", "a"]);
    const chips = () => [...el.querySelectorAll(".p2p-studio__chip")].filter((c) => !c.hidden).map((c) => c.textContent);
    expect(chips()).toEqual(["red", "cat", "blue", "dog"]);
    model.set("blend_words", ["a"]);
    expect(chips()).toEqual(["red", "cat", "blue", "dog", "a"]); // a chosen word always shows
  });

  it("section tabs write the section; arrows move between them", async () => {
    const { el, model } = await mount({ has_aligner: true, has_timeline: true, section: "playback" });
    const tabs = [...el.querySelectorAll(".p2p-studio__tab")];
    expect(tabs.map((t) => t.getAttribute("aria-selected"))).toEqual(["true", "false", "false"]);
    tabs[2].click();
    expect(model.get("section")).toBe("schedule");
    expect(tabs.map((t) => t.tabIndex)).toEqual([-1, -1, 0]);
    tabs[2].dispatchEvent(new KeyboardEvent("keydown", { key: "ArrowRight", bubbles: true }));
    expect(model.get("section")).toBe("playback");
    model.set("has_timeline", false);
    expect(tabs[2].hidden).toBe(true);
  });

  it("cleanup removes listeners and the DOM", async () => {
    const { el, model, stopInit, stopRender } = await mount();
    stopRender();
    stopInit();
    expect(model.listenerCount()).toBe(0);
    expect(el.children.length).toBe(0);
  });
});
