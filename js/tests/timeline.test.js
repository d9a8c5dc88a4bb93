// @vitest-environment happy-dom
import { afterEach, describe, expect, it } from "vitest";
import * as timelineModule from "../src/timeline.js";
import { FakeModel, instantiate } from "./fake-model.js";

const TIMESTEPS = Array.from({ length: 50 }, (_, i) => 981 - 20 * i);
const mounted = [];

async function mount(state = {}) {
  const widget = await instantiate(timelineModule);
  const model = new FakeModel({
    target: "a big tabby cat",
    words: ["a", "big", "tabby", "cat"],
    timesteps: TIMESTEPS,
    n_evals: 50,
    windows: { cross: [0, 40], self_attn: [0, 20], words: [], blend_start: 10 },
    playhead: null,
    ...state,
  });
  const el = document.createElement("div");
  document.body.appendChild(el);
  const stop = await widget.render({ model, el });
  mounted.push(el);
  return { model, el, stop };
}

afterEach(() => {
  for (const el of mounted.splice(0)) el.remove();
});

const handle = (el, row, edge) => el.querySelector(`.p2p-timeline__handle[data-row="${row}"][data-edge="${edge}"]`);
const bar = (el, row) => el.querySelector(`.p2p-timeline__track[data-row="${row}"] .p2p-timeline__bar`);
const key = (node, k) => node.dispatchEvent(new KeyboardEvent("keydown", { key: k, bubbles: true, cancelable: true }));
const pointer = (node, type, x, id = 1) =>
  node.dispatchEvent(new PointerEvent(type, { bubbles: true, cancelable: true, pointerId: id, button: 0, clientX: x, clientY: 5 }));
const live = (el) => el.querySelector(".p2p-live").textContent;

describe("timeline view: rendering", () => {
  it("has the default, self-attention and LocalBlend rows with their windows", async () => {
    const { el } = await mount();
    const labels = [...el.querySelectorAll(".p2p-timeline__labeltext")].map((n) => n.textContent);
    expect(labels).toEqual(["cross-attention (default)", "self-attention", "LocalBlend start"]);
    expect([bar(el, "cross").dataset.start, bar(el, "cross").dataset.end]).toEqual(["0", "40"]);
    expect(bar(el, "cross").style.width).toBe("80%");
    expect(bar(el, "self_attn").style.width).toBe("40%");
    expect([bar(el, "blend").dataset.start, bar(el, "blend").dataset.end]).toEqual(["10", "50"]);
    expect(el.querySelectorAll('.p2p-timeline__handle[data-row="blend"]')).toHaveLength(1);
  });

  it("labels the axis with the scheduler's timesteps, noisiest on the left", async () => {
    const { el } = await mount();
    const ticks = [...el.querySelectorAll(".p2p-timeline__tick")];
    expect(ticks[0].textContent).toBe("981");
    expect(ticks[ticks.length - 1].textContent).toBe(String(TIMESTEPS[49]));
    expect(parseFloat(ticks[0].style.left)).toBeLessThan(parseFloat(ticks[1].style.left));
  });

  it("handles are sliders with the step and timestep in their value text", async () => {
    const { el } = await mount();
    const end = handle(el, "cross", "end");
    expect(end.getAttribute("role")).toBe("slider");
    expect(end.getAttribute("aria-valuenow")).toBe("40");
    expect(end.getAttribute("aria-valuemin")).toBe("0");
    expect(end.getAttribute("aria-valuetext")).toBe(`step 40 (t = ${TIMESTEPS[40]})`);
    expect(end.tabIndex).toBe(0);
  });

  it("shows per-word rows and the target prompt as text", async () => {
    const evil = "<img src=x onerror=alert(1)>";
    const { el } = await mount({
      target: evil,
      words: [evil],
      windows: { cross: [0, 40], self_attn: [0, 20], words: [[evil, 5, 25]], blend_start: 10 },
    });
    expect(el.querySelector(".p2p-timeline__prompt").textContent).toBe(evil);
    expect(el.querySelector("img")).toBeNull();
    const row = el.querySelectorAll(".p2p-timeline__labeltext")[1];
    expect(row.textContent).toBe(`word “${evil}”`);
    const track = [...el.querySelectorAll(".p2p-timeline__track")].find((t) => t.dataset.row === `word:${evil}`);
    expect(track.querySelector(".p2p-timeline__bar").dataset.start).toBe("5");
  });

  it("draws the playhead where Python puts it", async () => {
    const { el, model } = await mount();
    const heads = () => [...el.querySelectorAll(".p2p-timeline__playhead")];
    expect(heads().every((h) => h.hidden)).toBe(true);
    model.set("playhead", 25);
    expect(heads().length).toBeGreaterThan(3);
    expect(heads().every((h) => !h.hidden && h.style.left === "51%")).toBe(true);
    model.set("playhead", null);
    expect(heads().every((h) => h.hidden)).toBe(true);
  });
});

describe("timeline view: a rule's windows (read-only)", () => {
  const BANDS = [
    { rule: "MutualSelfAttention", what: "mutual self-attention", start: 4, end: 50 },
    { rule: "PlugAndPlay", what: "<b>ResNet</b> features", start: 0, end: 40 },
  ];

  it("draws a labelled, focusable band per window, with a text alternative and no handles", async () => {
    const { el } = await mount({ rule_windows: BANDS });
    const tracks = [...el.querySelectorAll(".p2p-timeline__track--band")];
    expect(tracks).toHaveLength(2);
    const labels = [...el.querySelectorAll(".p2p-timeline__label--band")].map((n) => n.textContent);
    expect(labels).toEqual(["MutualSelfAttention: mutual self-attention", "PlugAndPlay: <b>ResNet</b> features"]);
    expect(el.querySelector(".p2p-timeline__label--band b")).toBeNull(); // text, never markup
    const bandBar = tracks[0].querySelector(".p2p-timeline__bar");
    expect([bandBar.dataset.start, bandBar.dataset.end, bandBar.style.left, bandBar.style.width]).toEqual(["4", "50", "8%", "92%"]);
    expect(tracks[0].tabIndex).toBe(0);
    expect(tracks[0].getAttribute("role")).toBe("img");
    expect(tracks[0].getAttribute("aria-label")).toBe(
      `MutualSelfAttention: mutual self-attention: steps 4 (t = ${TIMESTEPS[4]}) to 49 (t = ${TIMESTEPS[49]}), 46 of 50 (read-only)`
    );
    expect(tracks.every((t) => t.querySelector(".p2p-timeline__handle") === null)).toBe(true);
    expect(el.querySelector(".p2p-timeline__bandhead").textContent).toMatch(/read-only/);
  });

  it("follows rule_windows set from Python, and the playhead crosses the bands too", async () => {
    const { el, model } = await mount();
    expect(el.querySelectorAll(".p2p-timeline__track--band")).toHaveLength(0);
    expect(el.querySelector(".p2p-timeline__bandhead")).toBeNull();
    model.set("rule_windows", BANDS.slice(0, 1));
    expect(el.querySelectorAll(".p2p-timeline__track--band")).toHaveLength(1);
    model.set("playhead", 10);
    expect(el.querySelector(".p2p-timeline__track--band .p2p-timeline__playhead").hidden).toBe(false);
    model.set("rule_windows", []);
    expect(el.querySelectorAll(".p2p-timeline__track--band")).toHaveLength(0);
  });

  it("bands set during a drag wait for its end (the dragged handle is not redrawn away)", async () => {
    const { el, model } = await mount();
    const track = el.querySelector('.p2p-timeline__track[data-row="cross"]');
    track.getBoundingClientRect = () => ({ left: 0, top: 0, width: 500, height: 20, right: 500, bottom: 20 });
    const end = handle(el, "cross", "end");
    pointer(end, "pointerdown", 400);
    model.set("rule_windows", BANDS);
    expect(el.querySelectorAll(".p2p-timeline__track--band")).toHaveLength(0);
    expect(end.isConnected).toBe(true);
    pointer(end, "pointermove", 300);
    pointer(end, "pointerup", 300);
    expect(model.get("windows").cross).toEqual([0, 30]);
    expect(el.querySelectorAll(".p2p-timeline__track--band")).toHaveLength(2);
  });
});

describe("timeline view: editing", () => {
  it("arrow keys move an edge by one step and save", async () => {
    const { el, model } = await mount();
    const end = handle(el, "cross", "end");
    end.focus();
    key(end, "ArrowLeft");
    expect(model.get("windows").cross).toEqual([0, 39]);
    key(document.activeElement, "PageUp");
    expect(model.get("windows").cross).toEqual([0, 44]);
    key(document.activeElement, "End");
    expect(model.get("windows").cross).toEqual([0, 50]);
    expect(model.saves).toBe(3);
    expect(document.activeElement).toBe(handle(el, "cross", "end")); // focus survives the re-render
    expect(live(el)).toMatch(/ends at end of the run/);
  });

  it("a start edge cannot pass its end", async () => {
    const { el, model } = await mount({ windows: { cross: [0, 40], self_attn: [3, 3], words: [], blend_start: 10 } });
    key(handle(el, "self_attn", "start"), "ArrowRight");
    expect(model.saves).toBe(0);
    key(handle(el, "self_attn", "start"), "ArrowLeft");
    expect(model.get("windows").self_attn).toEqual([2, 3]);
  });

  it("dragging an edge snaps to steps, previews, and saves once on release", async () => {
    const { el, model } = await mount();
    const track = el.querySelector('.p2p-timeline__track[data-row="cross"]');
    track.getBoundingClientRect = () => ({ left: 100, top: 0, width: 500, height: 20, right: 600, bottom: 20 });
    const end = handle(el, "cross", "end");
    pointer(end, "pointerdown", 500);
    pointer(end, "pointermove", 352); // 252 px of 500 -> boundary 25.2 -> 25
    expect(bar(el, "cross").dataset.end).toBe("25");
    expect(model.saves).toBe(0);
    pointer(end, "pointermove", 331); // -> 23.1 -> 23
    pointer(end, "pointerup", 331);
    expect(model.get("windows").cross).toEqual([0, 23]);
    expect(model.saves).toBe(1);
  });

  it("a cancelled drag restores the window", async () => {
    const { el, model } = await mount();
    const track = el.querySelector('.p2p-timeline__track[data-row="self_attn"]');
    track.getBoundingClientRect = () => ({ left: 0, top: 0, width: 500, height: 20, right: 500, bottom: 20 });
    const start = handle(el, "self_attn", "start");
    pointer(start, "pointerdown", 0);
    pointer(start, "pointermove", 100);
    expect(bar(el, "self_attn").dataset.start).toBe("10");
    pointer(start, "pointercancel", 100);
    expect(bar(el, "self_attn").dataset.start).toBe("0");
    expect(model.saves).toBe(0);
  });

  it("the LocalBlend handle moves blend_start", async () => {
    const { el, model } = await mount();
    key(handle(el, "blend", "start"), "ArrowRight");
    expect(model.get("windows").blend_start).toBe(11);
  });

  it("adds and removes per-word rows", async () => {
    const { el, model } = await mount();
    const select = el.querySelector("select.p2p-timeline__word");
    expect([...select.options].map((o) => o.value)).toEqual(["a", "big", "tabby", "cat"]);
    select.value = "tabby";
    el.querySelector("button.p2p-timeline__add").click();
    expect(model.get("windows").words).toEqual([["tabby", 0, 40]]);
    expect([...el.querySelector("select.p2p-timeline__word").options].map((o) => o.value)).not.toContain("tabby");
    key(handle(el, "word:tabby", "end"), "Home");
    expect(model.get("windows").words).toEqual([["tabby", 0, 0]]);
    el.querySelector('button.p2p-timeline__remove[data-word="tabby"]').click();
    expect(model.get("windows").words).toEqual([]);
    expect(model.saves).toBe(3);
  });

  it("presets are requested from Python", async () => {
    const { el, model } = await mount();
    el.querySelector('button[data-preset="no_injection"]').click();
    el.querySelector('button[data-preset="source_only"]').click();
    expect(model.sent.map((m) => m.content)).toEqual([
      { type: "preset", name: "no_injection" },
      { type: "preset", name: "source_only" },
    ]);
  });

  it("follows windows set in Python and shows errors", async () => {
    const { el, model } = await mount();
    model.set("windows", { cross: [5, 15], self_attn: [0, 0], words: [], blend_start: 0 });
    expect([bar(el, "cross").dataset.start, bar(el, "cross").dataset.end]).toEqual(["5", "15"]);
    model.set("error", "not applied: cross window end 51 is outside [0, 50]");
    const banner = el.querySelector(".p2p-error");
    expect(banner.hidden).toBe(false);
    key(handle(el, "cross", "end"), "ArrowRight"); // still usable
    expect(model.get("windows").cross).toEqual([5, 16]);
  });

  it("cleanup removes every listener and the DOM", async () => {
    const { el, model, stop } = await mount();
    expect(model.listenerCount()).toBeGreaterThan(0);
    stop();
    expect(model.listenerCount()).toBe(0);
    expect(el.children).toHaveLength(0);
  });
});
