// @vitest-environment happy-dom
import { afterEach, describe, expect, it } from "vitest";
import * as playerModule from "../src/player.js";
import { FakeModel, instantiate } from "./fake-model.js";
import { frame, header } from "./frames-fixture.js";

const TOKENS = [
  ["<|startoftext|>", "a", "red", "cat", "<|endoftext|>"],
  ["<|startoftext|>", "a", "blue", "cat", "<|endoftext|>"],
];
const mounted = [];
const tick = (ms = 30) => new Promise((r) => setTimeout(r, ms));

function state(extra = {}) {
  return {
    status: "idle", run_id: 0, n_evals: 0, prompts: [], grids: [], step: 0, playing: false, follow: true,
    tokens: [[0, 2], [1, 2]], resolution: 0, normalize: "token", opacity: 0.6, fps: 30, ...extra,
  };
}

async function mount(extra = {}) {
  const widget = await instantiate(playerModule);
  const model = new FakeModel(state(extra));
  const stopInit = await widget.initialize({ model });
  const el = document.createElement("div");
  document.body.appendChild(el);
  const stopRender = await widget.render({ model, el });
  mounted.push(el);
  return { widget, model, el, stopInit, stopRender };
}

function stream(model, steps, { run = 1, nEvals = 10, end = false } = {}) {
  model.receive(header(run, TOKENS, nEvals));
  for (const s of steps) {
    const { msg, buffers } = frame({ run, step: s, timestep: 1000 - 100 * s, tokens: 5 });
    model.receive(msg, buffers);
  }
  if (end) model.receive({ type: "end", run, status: "done", steps });
}

const root = (el) => el.querySelector(".p2p-player");
const shown = (el) => Number(root(el).dataset.shownStep);

afterEach(() => {
  for (const el of mounted.splice(0)) el.remove();
});

describe("player view", () => {
  it("asks Python to replay what it lacks when the model starts", async () => {
    const { model } = await mount();
    expect(model.sent[0].content).toEqual({ type: "replay", run: null, have: [] });
  });

  it("shows a row per prompt, the selected tokens as tiles and follows live frames", async () => {
    const { el, model } = await mount();
    expect(el.querySelector(".p2p-player__empty").hidden).toBe(false);
    stream(model, [0, 3]);
    await tick();
    const rows = el.querySelectorAll(".p2p-player__row");
    expect(rows.length).toBe(2);
    expect([...rows].map((r) => r.querySelector(".p2p-player__role").textContent)).toEqual(["source", "edit"]);
    expect([...el.querySelectorAll(".p2p-player__tile figcaption")].map((c) => c.textContent)).toEqual(["x0", "red", "x0", "blue"]);
    expect(root(el).dataset.frames).toBe("2");
    expect(shown(el)).toBe(3);
    const canvases = el.querySelectorAll("canvas");
    expect(canvases.length).toBe(4);
    for (const c of canvases) expect([c.width, c.height, c.dataset.step]).toEqual([8, 8, "3"]);
    expect(el.querySelector(".p2p-player__step").textContent).toMatch(/^step 4 \/ 10 · t=700 · live$/);
    stream(model, [5], { run: 1 }); // the same run continues: follows to 5
    await tick();
    expect(shown(el)).toBe(5);
    expect(root(el).dataset.frames).toBe("3");
  });

  it("scrubs with the slider and saves the step on release, turning follow-live off", async () => {
    const { el, model } = await mount();
    stream(model, [0, 2, 4, 6]);
    await tick();
    const slider = el.querySelector(".p2p-player__slider");
    expect(slider.max).toBe("9");
    slider.value = "3";
    slider.dispatchEvent(new Event("input", { bubbles: true }));
    expect(shown(el)).toBe(2); // the newest received step at or before 3
    expect(el.querySelector(".p2p-player__step").textContent).toContain("(showing 2)");
    expect(model.get("follow")).toBe(false);
    const saves = model.saves;
    slider.dispatchEvent(new Event("change", { bubbles: true }));
    expect(model.get("step")).toBe(3);
    expect(model.saves).toBe(saves + 1);
    stream(model, [8], { run: 1 });
    await tick();
    expect(shown(el)).toBe(2); // not following any more
  });

  it("steps through received frames with the arrow keys, Home and End", async () => {
    const { el, model } = await mount();
    stream(model, [0, 2, 4, 6]);
    await tick();
    const r = root(el);
    const key = (k) => r.dispatchEvent(new KeyboardEvent("keydown", { key: k, bubbles: true }));
    key("ArrowLeft");
    expect([shown(el), model.get("step")]).toEqual([4, 4]);
    key("ArrowLeft");
    key("ArrowLeft");
    expect(shown(el)).toBe(0);
    key("ArrowLeft");
    expect(shown(el)).toBe(0);
    key("ArrowRight");
    expect(shown(el)).toBe(2);
    key("End");
    expect(shown(el)).toBe(6);
    key("Home");
    expect([shown(el), model.get("step")]).toEqual([0, 0]);
  });

  it("plays to the end of a finished run, then pauses and saves", async () => {
    const { el, model } = await mount({ fps: 60 });
    stream(model, [0, 1, 2, 3], { end: true });
    await tick();
    root(el).dispatchEvent(new KeyboardEvent("keydown", { key: "Home", bubbles: true }));
    el.querySelector(".p2p-player__play").click();
    expect(model.get("playing")).toBe(true);
    expect(el.querySelector(".p2p-player__play").textContent).toBe("Pause");
    await tick(300);
    expect(shown(el)).toBe(3);
    expect(model.get("playing")).toBe(false);
    expect(model.get("step")).toBe(3);
    expect(el.querySelector(".p2p-player__play").textContent).toBe("Play");
  });

  it("follows the step, playing and tokens traits set from Python", async () => {
    const { el, model } = await mount();
    stream(model, [0, 1, 2]);
    await tick();
    model.set("step", 1);
    await tick();
    expect(shown(el)).toBe(1);
    model.set("tokens", [[1, 1], [1, 3]]);
    await tick();
    expect([...el.querySelectorAll(".p2p-player__tile figcaption")].map((c) => c.textContent)).toEqual(["x0", "x0", "a", "cat"]);
  });

  it("toggles tokens with the chips", async () => {
    const { el, model } = await mount();
    stream(model, [0]);
    await tick();
    const chip = (b, t) => el.querySelector(`.p2p-player__chip[data-prompt="${b}"][data-token="${t}"]`);
    expect(chip(0, 2).getAttribute("aria-pressed")).toBe("true");
    expect(chip(0, 0).textContent).toBe("⟨start⟩");
    chip(0, 3).click();
    expect(model.get("tokens")).toEqual([[0, 2], [0, 3], [1, 2]]);
    await tick();
    chip(0, 2).click();
    expect(model.get("tokens")).toEqual([[0, 3], [1, 2]]);
  });

  it("resolution, scale and overlay controls write their traits", async () => {
    const { el, model } = await mount();
    stream(model, [0]);
    await tick();
    const res = el.querySelector(".p2p-player__resolution");
    expect([...res.options].map((o) => o.value)).toEqual(["0", "4", "2"]);
    res.value = "2";
    res.dispatchEvent(new Event("change", { bubbles: true }));
    expect(model.get("resolution")).toBe(2);
    const norm = el.querySelector(".p2p-player__normalize");
    norm.value = "global";
    norm.dispatchEvent(new Event("change", { bubbles: true }));
    expect(model.get("normalize")).toBe("global");
    const op = el.querySelector(".p2p-player__opacity");
    op.value = "0.25";
    op.dispatchEvent(new Event("change", { bubbles: true }));
    expect(model.get("opacity")).toBe(0.25);
  });

  it("reports a malformed frame to Python instead of throwing, and keeps working", async () => {
    const { el, model } = await mount();
    model.receive(header(1, TOKENS));
    const { msg, buffers } = frame({ tokens: 5 });
    model.receive(msg, buffers.slice(0, 2));
    const errors = model.sent.filter((m) => m.content.type === "client_error");
    expect(errors.length).toBe(1);
    expect(errors[0].content.message).toMatch(/frame: frame needs 5 buffers/);
    model.receive(msg, buffers);
    await tick();
    expect(root(el).dataset.frames).toBe("1");
  });

  it("a new run replaces the frames; a second view shares them", async () => {
    const { widget, model, el } = await mount();
    stream(model, [0, 1, 2], { end: true });
    stream(model, [0], { run: 2 });
    await tick();
    expect(root(el).dataset.frames).toBe("1");
    expect(root(el).dataset.run).toBe("2");
    const el2 = document.createElement("div");
    document.body.appendChild(el2);
    mounted.push(el2);
    await widget.render({ model, el: el2 });
    await tick();
    expect(root(el2).dataset.frames).toBe("1");
    expect(el2.querySelectorAll(".p2p-player__row").length).toBe(2);
  });

  it("shows the error trait and asks Python for the GIF", async () => {
    const { el, model } = await mount();
    model.set("error", "step <7> is out of range");
    const banner = el.querySelector(".p2p-error");
    expect([banner.hidden, banner.textContent]).toEqual([false, "step <7> is out of range"]);
    stream(model, [0]);
    await tick();
    el.querySelector(".p2p-player__gif").click();
    expect(model.sent.at(-1).content).toEqual({ type: "export_gif" });
  });

  it("draws the UNet strip of what the rule controlled at the step shown, following the playhead", async () => {
    const cells = [
      { name: "down_blocks.0.attentions.0.transformer_blocks.0.attn1.processor", kind: "self", block: "down 0", depth: 0 },
      { name: "down_blocks.0.attentions.0.transformer_blocks.0.attn2.processor", kind: "cross", block: "down 0", depth: 0 },
      { name: "up_blocks.0.attentions.0.transformer_blocks.0.attn1.processor", kind: "self", block: "up 0", depth: 0 },
      { name: "up_blocks.0.resnets.1.conv2", kind: "feature", block: "up 0", depth: 0 },
    ];
    const { el, model } = await mount();
    expect(el.querySelector(".p2p-player__unet").hidden).toBe(true); // no cells: no strip
    model.set("unet_cells", cells);
    model.set("controlled", [[], [], [2, 3], [3]]);
    stream(model, [0, 2, 3], { nEvals: 4, end: true });
    await tick();
    const strip = el.querySelector(".p2p-player__unet");
    expect(strip.hidden).toBe(false);
    const on = () => [...el.querySelectorAll(".p2p-player__unetcells .p2p-player__cell")].map((c) => c.dataset.on === "true");
    const blocks = [...el.querySelectorAll(".p2p-player__blocklabel")].map((b) => b.textContent);
    expect(blocks).toEqual(["down 0", "up 0"]);
    expect(on()).toEqual([false, false, false, true]); // step 3, the last frame
    expect(el.querySelector(".p2p-player__unetsummary").textContent).toBe("step 4: module output in 1 of 1 modules (up 0)");
    root(el).dispatchEvent(new KeyboardEvent("keydown", { key: "ArrowLeft", bubbles: true }));
    expect(on()).toEqual([false, false, true, true]);
    expect(el.querySelector(".p2p-player__unetsummary").textContent).toMatch(/^step 3: self-attention in 1 of 2 layers \(up 0\)/);
    root(el).dispatchEvent(new KeyboardEvent("keydown", { key: "Home", bubbles: true }));
    expect(on()).toEqual([false, false, false, false]);
    expect(el.querySelector(".p2p-player__unetsummary").textContent).toBe("step 1: no layer under the rule's control");
    expect(el.querySelectorAll(".p2p-player__unetcells .p2p-player__cell--feature")[0].title).toBe(
      "up_blocks.0.resnets.1.conv2 (module output): left alone"
    );
    expect(el.querySelector(".p2p-player__unetcells").dataset.compact).toBe("false");
    // SDXL-sized UNets (140 attention layers) get narrow cells without letters, all in view
    const many = Array.from({ length: 60 }, (_, i) => ({ ...cells[0], name: `layer ${i}`, block: `up ${i % 3}` }));
    model.set("unet_cells", many);
    await tick();
    expect(el.querySelectorAll(".p2p-player__unetcells .p2p-player__cell")).toHaveLength(60);
    expect(el.querySelector(".p2p-player__unetcells").dataset.compact).toBe("true");
  });

  it("draws a DiT's strip as rows of double- then single-stream blocks, all at one level", async () => {
    const joint = (i) => ({ name: `transformer_blocks.${i}.attn.processor`, kind: "joint", block: `double ${i}`, depth: i });
    const single = (i) => ({ name: `single_transformer_blocks.${i}.attn.processor`, kind: "single", block: `single ${i}`, depth: i });
    const { el, model } = await mount();
    model.set("unet_cells", [joint(0), joint(1), single(0), single(1), single(2)]);
    model.set("controlled", [[0, 1, 2, 3, 4], [3]]);
    stream(model, [0, 1], { nEvals: 2, end: true });
    await tick();
    const cells = el.querySelector(".p2p-player__unetcells");
    expect(cells.dataset.layout).toBe("blocks");
    const streams = [...cells.querySelectorAll(".p2p-player__stream")];
    expect(streams.map((s) => s.dataset.stream)).toEqual(["double", "single"]);
    expect(streams.map((s) => s.querySelector(".p2p-player__streamlabel").textContent)).toEqual([
      "double-stream blocks",
      "single-stream blocks",
    ]);
    expect([...streams[1].querySelectorAll(".p2p-player__blocklabel")].map((b) => b.textContent)).toEqual(["0", "1", "2"]);
    const depths = [...cells.querySelectorAll(".p2p-player__block")].map((b) => b.style.getPropertyValue("--p2p-depth"));
    expect(depths).toEqual(["0", "0", "0", "0", "0"]); // a row, not a U
    const on = () => [...cells.querySelectorAll(".p2p-player__cell")].map((c) => c.dataset.on === "true");
    expect(on()).toEqual([false, false, false, true, false]);
    expect(el.querySelector(".p2p-player__unetsummary").textContent).toBe(
      "step 2: single-stream attention in 1 of 3 blocks (single 1)"
    );
    const legend = [...el.querySelectorAll(".p2p-player__legend > span")].map((s) => s.textContent);
    expect(legend).toEqual(["J joint attention", "1 single-stream attention"]);
    root(el).dispatchEvent(new KeyboardEvent("keydown", { key: "Home", bubbles: true }));
    expect(on()).toEqual([true, true, true, true, true]);
    // back to a UNet: the U again, with its own legend
    model.set("unet_cells", [{ name: "up_blocks.0.attentions.0.transformer_blocks.0.attn1.processor", kind: "self", block: "up 0", depth: 1 }]);
    model.set("controlled", [[0], []]);
    await tick();
    expect(cells.dataset.layout).toBe("unet");
    expect(cells.querySelector(".p2p-player__block").style.getPropertyValue("--p2p-depth")).toBe("1");
    expect([...el.querySelectorAll(".p2p-player__legend > span")].map((s) => s.textContent)).toEqual(["S self-attention"]);
  });

  it("prompt text is shown as text", async () => {
    const { el, model } = await mount();
    model.receive({ ...header(1, TOKENS), prompts: [{ text: "<img src=x onerror=alert(1)>", tokens: TOKENS[0] }] });
    await tick();
    const p = el.querySelector(".p2p-player__prompt");
    expect(p.textContent).toBe("<img src=x onerror=alert(1)>");
    expect(p.querySelector("img")).toBeNull();
  });

  it("cleanup removes every listener, timer and the DOM", async () => {
    const { el, model, stopInit, stopRender } = await mount({ fps: 60 });
    stream(model, [0, 1, 2]);
    await tick();
    el.querySelector(".p2p-player__play").click();
    stopRender();
    stopInit();
    expect(model.listenerCount()).toBe(0);
    expect(el.children.length).toBe(0);
    const step = model.get("step");
    await tick(100);
    expect(model.get("step")).toBe(step);
  });
});
