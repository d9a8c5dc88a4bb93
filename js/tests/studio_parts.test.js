// The studio's pure helpers: parameter text <-> values, which words are offered first, the
// changed-words sentence, result zoom and pixel values.
import { describe, expect, it } from "vitest";
import {
  describeParam, formatParam, hasSlider, paramLabel, parseParam, parseWords, placeholderOf, rangeText, stepOf,
} from "../src/studio/params.js";
import { diffParts, diffSentence, moreText, offerWords } from "../src/studio/words.js";
import { fitScale, movedProbe, pixelAt, readoutText, scaleOf } from "../src/studio/zoom.js";

const param = (extra) => ({ name: "start_step", kind: "int", default: 4, help: "first step", low: 0, high: null, choices: [],
  optional: false, ...extra });

describe("parameters from their declaration", () => {
  it("labels, ranges and descriptions in words", () => {
    expect(paramLabel("attention_until")).toBe("attention until");
    expect(rangeText(param())).toBe("at least 0");
    expect(rangeText(param({ low: 0, high: 1 }))).toBe("0 to 1");
    expect(rangeText(param({ low: null, high: 3 }))).toBe("at most 3");
    expect(describeParam(param())).toBe("first step · whole number, at least 0");
    expect(describeParam(param({ kind: "words", help: "" }))).toBe("words separated by spaces or commas");
  });

  it("a slider only for bounded floats, with a hundredth of the range as its step", () => {
    expect(hasSlider(param({ kind: "float", low: 0, high: 1 }))).toBe(true);
    expect(hasSlider(param({ kind: "int", low: 0, high: 1 }))).toBe(false);
    expect(hasSlider(param({ kind: "float", low: 0, high: null }))).toBe(false);
    expect(stepOf(param({ kind: "float", low: 0, high: 1 }))).toBe("0.01");
    expect(stepOf(param())).toBe("1");
    expect(stepOf(param({ kind: "float", high: null }))).toBe("any");
  });

  it("parses what a control holds into the value Python checks", () => {
    expect(parseParam(param(), "7")).toBe(7);
    expect(parseParam(param(), " ")).toBe(null); // empty: Python says whether that is allowed
    expect(parseParam(param(), "2.5")).toBe(2.5); // Python refuses it for an int, naming the parameter
    expect(parseParam(param(), "abc")).toBe("abc");
    expect(parseParam(param({ kind: "bool" }), "on", true)).toBe(true);
    expect(parseParam(param({ kind: "choice", choices: [1, 2] }), "2")).toBe(2);
    expect(parseParam(param({ kind: "choice", choices: ["a", "b"] }), "b")).toBe("b");
    expect(parseWords(" cat, dog  bird,")).toEqual(["cat", "dog", "bird"]);
    expect(parseParam(param({ kind: "words" }), "cat,dog")).toEqual(["cat", "dog"]);
  });

  it("says which empty fields are needed and which may stay empty", () => {
    expect(placeholderOf(param({ kind: "words", default: null }))).toBe("needed");
    expect(placeholderOf(param({ default: null, optional: true }))).toBe("empty");
    expect(placeholderOf(param())).toBe("");
  });

  it("formats values back into the control's text", () => {
    expect(formatParam(param(), null)).toBe("");
    expect(formatParam(param(), 4)).toBe("4");
    expect(formatParam(param({ kind: "words" }), ["cat", "dog"])).toBe("cat dog");
  });
});

describe("changed words first", () => {
  const words = ["a", "big", "red", "star", "left"];

  it("offers the changed words and keeps the rest for the toggle", () => {
    const offered = offerWords(words, ["star"], [], false);
    expect(offered.order).toEqual(["star", "a", "big", "red", "left"]);
    expect([...offered.shown]).toEqual(["star"]);
    expect(offered.hiddenCount).toBe(4);
    expect(moreText(false, offered.hiddenCount)).toBe("all words (4 more)");
  });

  it("always shows a word with a setting of its own, and every word on request", () => {
    expect([...offerWords(words, ["star"], ["big"], false).shown]).toEqual(["star", "big"]);
    expect(offerWords(words, ["star"], [], true).hiddenCount).toBe(0);
    expect(moreText(true, 0)).toBe("changed words only");
  });

  it("shows every word when no word changed", () => {
    const offered = offerWords(words, [], [], false);
    expect(offered.order).toEqual(words);
    expect(offered.hiddenCount).toBe(0);
  });

  it("says what changed", () => {
    expect(diffParts({ source: ["circle"], target: ["star"] })).toEqual([["text", "Changed: "], ["del", "circle"], ["text", " → "],
      ["ins", "star"]]);
    expect(diffSentence({ source: ["circle"], target: ["star"] })).toBe("Changed words: circle becomes star.");
    expect(diffSentence({ source: [], target: ["sitting"] })).toBe("Added words: sitting.");
    expect(diffParts({ source: [], target: [] })).toEqual([["text", "The prompts have the same words."]]);
  });
});

describe("result zoom and pixel values", () => {
  it("fits whole factors for small images and shrinks only large ones", () => {
    expect(fitScale(32, 2, 600)).toBe(9); // (600 - 12) / 2 = 294 -> 9 x 32 = 288
    expect(fitScale(32, 3, 600, 320)).toBe(6);
    expect(fitScale(64, 1, 2000, 320)).toBe(5); // capped at 320 px a side
    expect(fitScale(512, 2, 600, 320)).toBeCloseTo(294 / 512);
    expect(scaleOf("4", 32, 2, 600)).toBe(4);
    expect(scaleOf("fit", 32, 2, 600, 320)).toBe(9);
  });

  it("finds the pixel under the pointer and moves the keyboard probe inside the image", () => {
    expect(pixelAt(0, 0, 32, 256)).toEqual([0, 0]);
    expect(pixelAt(255.9, 100, 32, 256)).toEqual([31, 12]);
    expect(pixelAt(400, -3, 32, 256)).toEqual([31, 0]);
    expect(movedProbe([0, 0], "ArrowRight", 32)).toEqual([1, 0]);
    expect(movedProbe([0, 0], "ArrowUp", 32)).toEqual([0, 0]);
    expect(movedProbe([31, 5], "ArrowRight", 32)).toEqual([31, 5]);
    expect(movedProbe([3, 3], "Enter", 32)).toBe(null);
  });

  it("reads every result's value at one pixel", () => {
    expect(readoutText(3, 4, [["source", [1, 2, 3]], ["edit", [4, 5, 6]], ["broken", null]])).toBe(
      "pixel (3, 4): source rgb(1, 2, 3) · edit rgb(4, 5, 6)",
    );
    expect(readoutText(0, 0, [])).toBe("");
  });
});
