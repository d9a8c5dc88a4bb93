import { describe, expect, it } from "vitest";
import { parseFrameMessage } from "../lib/framebuffer.js";
import { HEAT_ANCHORS, gridMap, heatLut, heatRgba, normalizeMaps, resizeNearest, tokenLabel, tokenMap } from "../lib/heatmap.js";
import { asDataViews, frame } from "./frames-fixture.js";

function parsed(opts) {
  const { msg, buffers } = frame(opts);
  return parseFrameMessage(msg, asDataViews(buffers));
}

describe("colour table", () => {
  it("runs from the first to the last anchor", () => {
    const lut = heatLut();
    expect(lut.length).toBe(768);
    expect(Array.from(lut.slice(0, 3))).toEqual(HEAT_ANCHORS[0]);
    expect(Array.from(lut.slice(765))).toEqual(HEAT_ANCHORS[HEAT_ANCHORS.length - 1]);
    expect(Array.from(lut.slice(3 * 51, 3 * 51 + 3))).toEqual(HEAT_ANCHORS[1]); // 51/255 = 1/5
  });

  it("colours values with opaque alpha", () => {
    const rgba = heatRgba(Float32Array.from([0, 1, Number.NaN, 2]));
    expect(Array.from(rgba.slice(0, 4))).toEqual([...HEAT_ANCHORS[0], 255]);
    expect(Array.from(rgba.slice(4, 8))).toEqual([...HEAT_ANCHORS[5], 255]);
    expect(Array.from(rgba.slice(8, 12))).toEqual([...HEAT_ANCHORS[0], 255]);
    expect(Array.from(rgba.slice(12, 16))).toEqual([...HEAT_ANCHORS[5], 255]);
  });
});

describe("maps", () => {
  it("dequantises one token of one prompt", () => {
    const f = parsed({ maps: (g, b, t, i) => (b === 1 && t === 2 ? 255 * (i % 2) : 7), scale: (g, b, t) => (t === 2 ? 0.4 : 1) });
    const m = gridMap(f, 0, 1, 2);
    expect([m.h, m.w]).toEqual([4, 4]);
    expect(Array.from(m.data.slice(0, 4)).map((v) => Math.round(v * 1000) / 1000)).toEqual([0, 0.4, 0, 0.4]);
    expect(() => gridMap(f, 0, 2, 0)).toThrow();
  });

  it("averages every grid at the finest, or picks one resolution", () => {
    // grid 0 (4x4): all 255 with scale 1; grid 1 (2x2): top-left cell 255 with scale 0.5
    const f = parsed({ maps: (g, b, t, i) => (g === 0 ? 255 : i === 0 ? 255 : 0), scale: (g) => (g === 0 ? 1 : 0.5) });
    const all = tokenMap(f, 0, 0, 0);
    expect([all.h, all.w]).toEqual([4, 4]);
    expect(all.data[0]).toBeCloseTo(0.75); // (1 + 0.5) / 2, upsampled top-left quadrant
    expect(all.data[3]).toBeCloseTo(0.5); // (1 + 0) / 2
    const coarse = tokenMap(f, 0, 0, 2);
    expect([coarse.h, coarse.w, coarse.data[0], coarse.data[1]]).toEqual([2, 2, 0.5, 0]);
  });

  it("resizes by nearest neighbour", () => {
    expect(Array.from(resizeNearest(Float32Array.from([1, 2, 3, 4]), 2, 2, 4, 4))).toEqual([1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4]);
  });

  it("normalises per token or with one shared scale", () => {
    const maps = [{ data: Float32Array.from([0, 0.2]) }, { data: Float32Array.from([0.1, 0.8]) }, { data: Float32Array.from([0, 0]) }];
    expect(normalizeMaps(maps, "token").map((a) => Array.from(a))).toEqual([[0, 1], [0.125, 1], [0, 0]]);
    expect(normalizeMaps(maps, "global").map((a) => Array.from(a, (v) => Math.round(v * 1000) / 1000))).toEqual([[0, 0.25], [0.125, 1], [0, 0]]);
  });

  it("labels special tokens", () => {
    const tokens = ["<|startoftext|>", "cat</w>", "<|endoftext|>"];
    expect([0, 1, 2].map((p) => tokenLabel(tokens, p))).toEqual(["⟨start⟩", "cat", "⟨end⟩"]);
    // T5 (Flux): no start token, "</s>" at the end
    expect([0, 1, 2].map((p) => tokenLabel(["a", "cat", "</s>"], p))).toEqual(["a", "cat", "⟨end⟩"]);
  });
});
