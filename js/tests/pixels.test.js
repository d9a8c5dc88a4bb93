import { describe, expect, it } from "vitest";
import { asBytes, byteSum, grayToRgba } from "../lib/pixels.js";

describe("grayToRgba", () => {
  it("copies each grey value into r, g, b with opaque alpha", () => {
    const rgba = grayToRgba(Uint8Array.from([0, 128, 255, 7]), 2, 2);
    expect(rgba).toBeInstanceOf(Uint8ClampedArray);
    expect(Array.from(rgba)).toEqual([0, 0, 0, 255, 128, 128, 128, 255, 255, 255, 255, 255, 7, 7, 7, 255]);
  });

  it("rejects a byte count that does not match the shape", () => {
    expect(() => grayToRgba(new Uint8Array(5), 2, 3)).toThrow(/expected 6 bytes/);
  });

  it("rejects non-integer or negative sizes", () => {
    expect(() => grayToRgba(new Uint8Array(0), -1, 0)).toThrow(RangeError);
    expect(() => grayToRgba(new Uint8Array(2), 1.5, 1)).toThrow(RangeError);
  });
});

describe("byteSum and asBytes", () => {
  it("sums bytes exactly", () => {
    expect(byteSum(Uint8Array.from([255, 255, 1]))).toBe(511);
    expect(byteSum(new Uint8Array(0))).toBe(0);
  });

  it("honours a DataView's byteOffset and byteLength", () => {
    const backing = Uint8Array.from([9, 9, 1, 2, 3, 9]);
    const view = new DataView(backing.buffer, 2, 3);
    expect(Array.from(asBytes(view))).toEqual([1, 2, 3]);
    expect(byteSum(asBytes(view))).toBe(6);
  });

  it("refuses non-binary input", () => {
    expect(() => asBytes([1, 2, 3])).toThrow(TypeError);
  });
});
