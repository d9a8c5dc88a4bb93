// @vitest-environment happy-dom
// The block probe: its pure helpers (groups, heights, toggle, text) and its view on a fake model
// (bars by kind, hover text, clicks writing `selected`, Clear, cleanup).
import { afterEach, describe, expect, it } from "vitest";
import * as probeModule from "../src/block_probe.js";
import { barHeights, describeBlock, formatScore, groupBlocks, selectionText, toggleIndex } from "../src/block_probe/bars.js";
import { FakeModel, instantiate } from "./fake-model.js";

const BLOCKS = [
  { label: "double 0", place: "double", depth: 0, score: 0.5 },
  { label: "double 1", place: "double", depth: 1, score: 0.0 },
  { label: "single 0", place: "single", depth: 0, score: 1.0 },
  { label: "single 1", place: "single", depth: 1, score: 0.00012 },
];

describe("block probe helpers", () => {
  it("groups double-stream blocks before single-stream ones, by depth, keeping indices", () => {
    const shuffled = [BLOCKS[3], BLOCKS[1], BLOCKS[2], BLOCKS[0]];
    const groups = groupBlocks(shuffled);
    expect(groups.map((g) => g.place)).toEqual(["double", "single"]);
    expect(groups[0].items.map((b) => [b.label, b.index])).toEqual([["double 0", 3], ["double 1", 1]]);
    expect(groups[1].items.map((b) => [b.label, b.index])).toEqual([["single 0", 2], ["single 1", 0]]);
    expect(groupBlocks(BLOCKS.slice(0, 2)).map((g) => g.place)).toEqual(["double"]); // SD3: no single group
    expect(groupBlocks([])).toEqual([]);
  });

  it("scales heights to the highest score, and all zero when nothing scores", () => {
    expect(barHeights(BLOCKS)).toEqual([0.5, 0, 1, 0.00012]);
    expect(barHeights(BLOCKS.map((b) => ({ ...b, score: 0 })))).toEqual([0, 0, 0, 0]);
    expect(barHeights([{ ...BLOCKS[0], score: Number.NaN }, BLOCKS[2]])).toEqual([0, 1]);
  });

  it("toggles an index in and out, sorted, without repeats", () => {
    expect(toggleIndex([], 2)).toEqual([2]);
    expect(toggleIndex([3, 1], 2)).toEqual([1, 2, 3]);
    expect(toggleIndex([1, 2, 3], 2)).toEqual([1, 3]);
    expect(toggleIndex(undefined, 0)).toEqual([0]);
  });

  it("writes scores and bars as text", () => {
    expect(formatScore(0)).toBe("0");
    expect(formatScore(0.123456)).toBe("0.123");
    expect(formatScore(0.00012)).toBe("1.20e-4");
    expect(formatScore(Number.NaN)).toBe("?");
    expect(describeBlock(BLOCKS[0])).toBe("double 0: score 0.5");
    expect(describeBlock(BLOCKS[3], true)).toBe("single 1: score 1.20e-4 (selected)");
    expect(selectionText(BLOCKS, [0, 3])).toBe("selected: double 0, single 1");
    expect(selectionText(BLOCKS, [])).toMatch(/^no block selected/);
  });
});

const mounted = [];

async function mount(extra = {}) {
  const widget = await instantiate(probeModule);
  const model = new FakeModel({ blocks: BLOCKS, selected: [], metric: "latent-cosine", status: "", ...extra });
  const el = document.createElement("div");
  document.body.appendChild(el);
  const stop = await widget.render({ model, el });
  mounted.push(el);
  return { model, el, stop };
}

afterEach(() => {
  for (const el of mounted.splice(0)) el.remove();
});

describe("block probe view", () => {
  it("draws one bar per block in two groups, as tall as its score", async () => {
    const { el } = await mount();
    const rows = el.querySelectorAll(".p2p-block-probe__bars");
    expect([...rows].map((r) => r.getAttribute("aria-label"))).toEqual(["double-stream blocks", "single-stream blocks"]);
    const bars = [...el.querySelectorAll(".p2p-block-probe__bar")];
    expect(bars.map((b) => b.dataset.label)).toEqual(["double 0", "double 1", "single 0", "single 1"]);
    expect(bars.map((b) => b.querySelector(".p2p-block-probe__fill").style.height)).toEqual(["50.00%", "0.00%", "100.00%", "0.01%"]);
    expect(bars[0].getAttribute("aria-label")).toBe("double 0: score 0.5");
    expect(el.querySelector(".p2p-block-probe__metric").textContent).toMatch(/^score: latent-cosine/);
  });

  it("says a hovered bar's block and score", async () => {
    const { el } = await mount();
    const readout = el.querySelector(".p2p-block-probe__readout");
    const bar = el.querySelectorAll(".p2p-block-probe__bar")[2];
    bar.dispatchEvent(new MouseEvent("mouseover", { bubbles: true }));
    expect(readout.textContent).toBe("single 0: score 1");
    el.querySelector(".p2p-block-probe__groups").dispatchEvent(new MouseEvent("mouseleave"));
    expect(readout.textContent).toMatch(/^hover a bar/);
  });

  it("toggles clicked bars into selected and saves; Clear empties it", async () => {
    const { el, model } = await mount();
    const bars = el.querySelectorAll(".p2p-block-probe__bar");
    bars[3].click();
    bars[0].click();
    expect(model.get("selected")).toEqual([0, 3]);
    expect(model.saves).toBe(2);
    expect(bars[0].getAttribute("aria-pressed")).toBe("true");
    expect(bars[1].getAttribute("aria-pressed")).toBe("false");
    expect(el.querySelector(".p2p-block-probe__selection").textContent).toBe("selected: double 0, single 1");
    bars[3].click();
    expect(model.get("selected")).toEqual([0]);
    el.querySelector(".p2p-block-probe__clear").click();
    expect(model.get("selected")).toEqual([]);
    expect(el.querySelector(".p2p-block-probe__clear").disabled).toBe(true);
  });

  it("follows Python: new blocks, a selection put back, status and errors", async () => {
    const { el, model } = await mount({ selected: [1] });
    expect(el.querySelectorAll(".p2p-block-probe__bar--selected").length).toBe(1);
    model.set("blocks", BLOCKS.slice(0, 2));
    model.set("selected", []);
    expect(el.querySelectorAll(".p2p-block-probe__bar").length).toBe(2);
    expect(el.querySelectorAll(".p2p-block-probe__bars").length).toBe(1);
    model.set("status", "double 1: run 3 of 5 (50 %)");
    expect(el.querySelector(".p2p-block-probe__status").textContent).toBe("double 1: run 3 of 5 (50 %)");
    model.set("error", "not applied: selected: 9 is not a block index");
    expect(el.querySelector(".p2p-error").textContent).toMatch(/9 is not a block index/);
    model.set("blocks", []);
    expect(el.querySelector(".p2p-block-probe__empty").textContent).toBe("no probe result yet");
  });

  it("shows block labels as text, never markup, and cleans up", async () => {
    const { el, model, stop } = await mount({ metric: "<img src=x onerror=alert(1)>" });
    expect(el.querySelector(".p2p-block-probe__metric img")).toBeNull();
    stop();
    expect(el.children.length).toBe(0);
    expect(model.listenerCount()).toBe(0);
  });
});
