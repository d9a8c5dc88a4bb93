// @vitest-environment happy-dom
import { afterEach, describe, expect, it } from "vitest";
import * as alignerModule from "../src/aligner.js";
import { FakeModel, instantiate } from "./fake-model.js";

// tokens as Python's token_rows() sends them
function rows(words) {
  const out = [{ pos: 0, text: "<|startoftext|>", word: -1, word_text: "", special: "bos" }];
  words.forEach((w, k) => {
    const pieces = Array.isArray(w) ? w[1] : [w];
    const text = Array.isArray(w) ? w[0] : w;
    for (const piece of pieces) out.push({ pos: out.length, text: piece, word: k, word_text: text, special: "" });
  });
  out.push({ pos: out.length, text: "<|endoftext|>", word: -1, word_text: "", special: "eos" });
  return out;
}

const SOURCE = rows(["a", "orange", ["cat.", ["cat", "."]]]); // BOS a orange cat . EOS -> 0..5
const TARGET = rows(["a", "big", "tabby", ["cat.", ["cat", "."]]]); // BOS a big tabby cat . EOS -> 0..6

const mounted = [];

async function mount(state = {}) {
  const widget = await instantiate(alignerModule);
  const model = new FakeModel({
    source: "a orange cat.",
    target: "a big tabby cat.",
    source_tokens: SOURCE,
    target_tokens: TARGET,
    links: [[0, 0, 1], [1, 1, 1], [3, 4, 1], [4, 5, 1], [5, 6, 1]],
    show_special: false,
    kind: "auto",
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

const chip = (el, side, pos) => el.querySelector(`.p2p-aligner__chip[data-side="${side}"][data-pos="${pos}"]`);
const key = (node, k, opts = {}) =>
  node.dispatchEvent(new KeyboardEvent("keydown", { key: k, bubbles: true, cancelable: true, ...opts }));
const pointer = (node, type, x, y, id = 1) =>
  node.dispatchEvent(
    new PointerEvent(type, { bubbles: true, cancelable: true, pointerId: id, button: 0, clientX: x, clientY: y })
  );
const live = (el) => el.querySelector(".p2p-live").textContent;

describe("aligner view: tokens", () => {
  it("shows one chip per token, BOS/EOS hidden until asked", async () => {
    const { el, model } = await mount();
    const texts = (side) =>
      [...el.querySelectorAll(`.p2p-aligner__chip[data-side="${side}"]`)].map((c) => c.textContent);
    expect(texts("source")).toEqual(["a", "orange", "cat", "."]);
    expect(texts("target")).toEqual(["a", "big", "tabby", "cat", "."]);
    model.set("show_special", true);
    expect(texts("source")).toEqual(["BOS", "a", "orange", "cat", ".", "EOS"]);
    expect(el.querySelector(".p2p-aligner__special input").checked).toBe(true);
  });

  it("groups the tokens of a multi-token word", async () => {
    const { el } = await mount();
    const groups = el.querySelectorAll('.p2p-aligner__row[data-side="source"] .p2p-aligner__word--multi');
    expect(groups).toHaveLength(1);
    expect([...groups[0].querySelectorAll(".p2p-aligner__chip")].map((c) => c.dataset.pos)).toEqual(["3", "4"]);
    expect(groups[0].getAttribute("aria-label")).toBe("word cat.");
    expect(groups[0].querySelector(".p2p-aligner__wordlabel").textContent).toBe("cat.");
  });

  it("renders prompt text and tokens as text, never markup", async () => {
    const evil = "<img src=x onerror=alert(1)>";
    const { el } = await mount({ source: evil, source_tokens: rows([[evil, ["<", "img", "src", "=", "x", ">"]]]) });
    expect(el.querySelector('input[data-side="source"]').value).toBe(evil);
    expect(el.querySelector("img")).toBeNull();
    expect(chip(el, "source", 1).textContent).toBe("<");
    expect(el.querySelector(".p2p-aligner__word--multi").getAttribute("aria-label")).toBe(`word ${evil}`);
  });

  it("marks unlinked target tokens as new", async () => {
    const { el } = await mount();
    expect(chip(el, "target", 2).classList.contains("p2p-aligner__chip--new")).toBe(true);
    expect(chip(el, "target", 2).getAttribute("aria-label")).toMatch(/new token/);
    expect(chip(el, "target", 1).classList.contains("p2p-aligner__chip--new")).toBe(false);
  });

  it("re-renders when Python sends new tokens", async () => {
    const { el, model } = await mount();
    model.set("target_tokens", rows(["a", "dog"]));
    expect([...el.querySelectorAll('.p2p-aligner__chip[data-side="target"]')].map((c) => c.textContent)).toEqual([
      "a",
      "dog",
    ]);
  });
});

describe("aligner view: linking", () => {
  it("pick then place links the two tokens, and splits the source's weight evenly", async () => {
    const { el, model } = await mount();
    chip(el, "source", 2).click(); // orange
    expect(chip(el, "source", 2).getAttribute("aria-pressed")).toBe("true");
    expect(live(el)).toMatch(/picked source token "orange"/);
    chip(el, "target", 2).click(); // big
    expect(model.get("links")).toContainEqual([2, 2, 1]);
    chip(el, "source", 2).click();
    chip(el, "target", 3).click(); // tabby
    const fromOrange = model.get("links").filter((l) => l[0] === 2);
    expect(fromOrange).toEqual([[2, 2, 0.5], [2, 3, 0.5]]);
    expect(model.saves).toBe(2);
    expect(chip(el, "source", 2).getAttribute("aria-pressed")).toBe("false");
    expect(live(el)).toMatch(/linked "orange" to "tabby", weight 0.5/);
  });

  it("can pick on the target row and place on the source row", async () => {
    const { el, model } = await mount();
    chip(el, "target", 3).click();
    chip(el, "source", 2).click();
    expect(model.get("links")).toContainEqual([2, 3, 1]);
  });

  it("clicking the picked chip again, or Escape, cancels", async () => {
    const { el, model } = await mount();
    chip(el, "source", 2).click();
    chip(el, "source", 2).click();
    expect(chip(el, "source", 2).getAttribute("aria-pressed")).toBe("false");
    chip(el, "source", 2).click();
    key(chip(el, "source", 2), "Escape");
    chip(el, "target", 2).click(); // nothing picked now: this picks the target
    expect(model.saves).toBe(0);
  });

  it("keyboard: arrows move, Enter picks, Down changes row, Enter places", async () => {
    const { el, model } = await mount();
    const first = chip(el, "source", 1);
    expect(first.tabIndex).toBe(0);
    expect(chip(el, "source", 2).tabIndex).toBe(-1);
    first.focus();
    key(first, "ArrowRight");
    expect(document.activeElement).toBe(chip(el, "source", 2));
    expect(chip(el, "source", 2).tabIndex).toBe(0);
    key(document.activeElement, "Enter");
    expect(chip(el, "source", 2).getAttribute("aria-pressed")).toBe("true");
    key(document.activeElement, "ArrowDown");
    expect(document.activeElement.dataset.side).toBe("target");
    key(document.activeElement, "ArrowRight");
    key(document.activeElement, "ArrowRight");
    expect(document.activeElement).toBe(chip(el, "target", 3));
    key(document.activeElement, " ");
    expect(model.get("links")).toContainEqual([2, 3, 1]);
    expect(model.saves).toBe(1);
  });

  it("keyboard: handled keys do not reach the notebook", async () => {
    const { el } = await mount();
    let reached = 0;
    const outer = (ev) => {
      if (ev.key === "ArrowDown") reached += 1;
    };
    document.addEventListener("keydown", outer);
    try {
      key(chip(el, "source", 1), "ArrowDown");
      expect(reached).toBe(0);
    } finally {
      document.removeEventListener("keydown", outer);
    }
  });

  it("pointer drag from a source chip onto a target chip links them", async () => {
    const { el, model } = await mount();
    const src = chip(el, "source", 2);
    pointer(src, "pointerdown", 10, 10);
    pointer(src, "pointermove", 30, 60);
    expect(src.classList.contains("p2p-aligner__chip--dragging")).toBe(true);
    pointer(chip(el, "target", 3), "pointerup", 30, 60);
    expect(model.get("links")).toContainEqual([2, 3, 1]);
    expect(model.saves).toBe(1);
    expect(src.classList.contains("p2p-aligner__chip--dragging")).toBe(false);
    src.click(); // the click that follows a drag is swallowed (no pick)
    expect(src.getAttribute("aria-pressed")).toBe("false");
  });

  it("a drag dropped on the same row, or cancelled, links nothing", async () => {
    const { el, model } = await mount();
    pointer(chip(el, "source", 2), "pointerdown", 10, 10);
    pointer(chip(el, "source", 2), "pointermove", 60, 10);
    pointer(chip(el, "source", 1), "pointerup", 60, 10);
    pointer(chip(el, "source", 2), "pointerdown", 10, 10, 2);
    pointer(chip(el, "source", 2), "pointermove", 60, 60, 2);
    pointer(chip(el, "source", 2), "pointercancel", 60, 60, 2);
    expect(model.saves).toBe(0);
    expect(live(el)).toMatch(/cancelled/);
  });

  it("a press without movement is a click (pick), not a drag", async () => {
    const { el, model } = await mount();
    const src = chip(el, "source", 2);
    pointer(src, "pointerdown", 10, 10);
    pointer(src, "pointermove", 11, 11);
    pointer(src, "pointerup", 11, 11);
    src.click();
    expect(src.getAttribute("aria-pressed")).toBe("true");
    expect(model.saves).toBe(0);
  });
});

describe("aligner view: links, weights and M", () => {
  it("draws one line per visible link and removes a link when its line is clicked", async () => {
    const { el, model } = await mount();
    // BOS->BOS and EOS->EOS are hidden with their chips
    expect(el.querySelectorAll(".p2p-aligner__link")).toHaveLength(3);
    el.querySelector('.p2p-aligner__hit[data-i="1"][data-j="1"]').dispatchEvent(
      new MouseEvent("click", { bubbles: true })
    );
    expect(model.get("links")).not.toContainEqual([1, 1, 1]);
    expect(el.querySelectorAll(".p2p-aligner__link")).toHaveLength(2);
    model.set("show_special", true);
    expect(el.querySelectorAll(".p2p-aligner__link")).toHaveLength(4);
  });

  it("says when a new link shares out its source's weight, and writes the weights on the links", async () => {
    const { el, model } = await mount({ links: [[2, 3, 1]] });
    const notice = el.querySelector(".p2p-aligner__notice");
    expect(notice.hidden).toBe(true);
    expect(el.querySelectorAll(".p2p-aligner__linkweight")).toHaveLength(0); // weight 1: no label
    chip(el, "source", 2).click();
    chip(el, "target", 2).click();
    expect(model.get("links")).toEqual([[2, 2, 0.5], [2, 3, 0.5]]);
    expect(notice.hidden).toBe(false);
    expect(notice.textContent).toContain('"orange" now feeds 2 targets, so its weight is shared');
    expect(live(el)).toContain("shared");
    expect([...el.querySelectorAll(".p2p-aligner__linkweight")].map((t) => t.textContent)).toEqual(["0.5", "0.5"]);
    // editing a weight (or Python putting other links back) makes the notice stale: it goes
    const input = el.querySelectorAll("input.p2p-aligner__weight")[0];
    input.value = "1";
    input.dispatchEvent(new Event("change", { bubbles: true }));
    expect(notice.hidden).toBe(true);
    // a link that shares nothing says nothing
    chip(el, "source", 1).click();
    chip(el, "target", 1).click();
    expect(notice.hidden).toBe(true);
  });

  it("lists links with editable weights and remove buttons", async () => {
    const { el, model } = await mount({ links: [[2, 2, 0.5], [2, 3, 0.5]] });
    const inputs = el.querySelectorAll("input.p2p-aligner__weight");
    expect(inputs).toHaveLength(2);
    inputs[1].value = "0.25";
    inputs[1].dispatchEvent(new Event("change", { bubbles: true }));
    expect(model.get("links")).toEqual([[2, 2, 0.5], [2, 3, 0.25]]);
    el.querySelector('button.p2p-aligner__remove[data-j="2"]').click();
    expect(model.get("links")).toEqual([[2, 3, 0.25]]); // an edited weight is not re-split
    expect(model.saves).toBe(2);
  });

  it("sends an unparsable weight to Python as NaN, for Python to reject", async () => {
    const { el, model } = await mount({ links: [[2, 2, 1]] });
    const input = el.querySelector("input.p2p-aligner__weight");
    input.value = "";
    input.dispatchEvent(new Event("change", { bubbles: true }));
    expect(Number.isNaN(model.get("links")[0][2])).toBe(true);
    expect(JSON.parse(JSON.stringify(model.get("links")))).toEqual([[2, 2, null]]);
  });

  it("Delete removes every link of the focused chip", async () => {
    const { el, model } = await mount({ links: [[2, 2, 0.5], [2, 3, 0.5], [1, 1, 1]] });
    chip(el, "source", 2).focus();
    key(chip(el, "source", 2), "Delete");
    expect(model.get("links")).toEqual([[1, 1, 1]]);
  });

  it("the heat map shows M on the used rows and columns, BOS/EOS fed automatically", async () => {
    const { el, model } = await mount({ links: [[2, 2, 0.5], [2, 3, 0.5]], show_special: true });
    const cell = (i, j) => el.querySelector(`td.p2p-aligner__cell[data-i="${i}"][data-j="${j}"]`);
    expect(el.querySelectorAll("td.p2p-aligner__cell")).toHaveLength(6 * 7);
    expect(cell(2, 2).textContent).toBe("0.5");
    expect(Number(cell(0, 0).dataset.w)).toBe(1);
    expect(Number(cell(5, 6).dataset.w)).toBe(1);
    expect(Number(cell(1, 1).dataset.w)).toBe(0);
    expect(cell(2, 2).style.backgroundColor).not.toBe("transparent");
    model.set("links", [[2, 2, 1]]);
    expect(cell(2, 3).dataset.w).toBe("0");
    model.set("show_special", false);
    expect(el.querySelectorAll("td.p2p-aligner__cell")).toHaveLength(4 * 5);
  });

  it("heat map headers are token text, not markup", async () => {
    const { el } = await mount({ target_tokens: rows([["<b>x</b>", ["<b>", "x", "</b>"]]]), links: [] });
    expect([...el.querySelectorAll(".p2p-aligner__colhead")].map((th) => th.textContent)).toEqual(["<b>", "x", "</b>"]);
    expect(el.querySelector(".p2p-aligner__heat b")).toBeNull();
  });
});

describe("aligner view: toolbar and lifecycle", () => {
  it("auto-align sends the chosen kind to Python", async () => {
    const { el, model } = await mount();
    const select = el.querySelector("select.p2p-aligner__kind");
    select.value = "refine";
    select.dispatchEvent(new Event("change", { bubbles: true }));
    expect(model.get("kind")).toBe("refine");
    el.querySelector("button.p2p-aligner__auto").click();
    expect(model.sent).toEqual([{ content: { type: "auto_align", kind: "refine" }, buffers: [] }]);
  });

  it("editing a prompt writes the text (Python re-tokenises)", async () => {
    const { el, model } = await mount();
    const input = el.querySelector('input[data-side="target"]');
    input.value = "a big cat";
    input.dispatchEvent(new Event("change", { bubbles: true }));
    expect(model.get("target")).toBe("a big cat");
    expect(model.saves).toBe(1);
    model.set("target", "reverted by Python");
    expect(input.value).toBe("reverted by Python");
  });

  it("the show BOS/EOS box writes show_special", async () => {
    const { el, model } = await mount();
    const box = el.querySelector(".p2p-aligner__special input");
    box.checked = true;
    box.dispatchEvent(new Event("change", { bubbles: true }));
    expect(model.get("show_special")).toBe(true);
    expect(chip(el, "source", 0)).not.toBeNull();
  });

  it("shows Python's error in a banner", async () => {
    const { el, model } = await mount();
    const banner = el.querySelector(".p2p-error");
    expect(banner.hidden).toBe(true);
    model.set("error", "not applied: link 0: weight nan is not a finite number");
    expect(banner.hidden).toBe(false);
    expect(banner.textContent).toMatch(/weight nan/);
    chip(el, "source", 2).click(); // still usable
    chip(el, "target", 2).click();
    expect(model.get("links")).toContainEqual([2, 2, 1]);
  });

  it("cleanup removes every listener and the DOM", async () => {
    const { el, model, stop } = await mount();
    expect(model.listenerCount()).toBeGreaterThan(0);
    stop();
    expect(model.listenerCount()).toBe(0);
    expect(el.children).toHaveLength(0);
  });
});

// an SD3 prompt as Python's token_rows() sends it: CLIP's tokens from 0 (BOS .. EOS), T5's from 77
// (no BOS), each row naming its segment
function sd3Rows(words) {
  const clip = rows(words).map((t) => ({ ...t, segment: "CLIP" }));
  const t5 = rows(words)
    .slice(1)
    .map((t, k) => ({ ...t, pos: 77 + k, text: t.special === "eos" ? "</s>" : t.text, segment: "T5" }));
  return [...clip, ...t5];
}

describe("aligner view: token segments (SD3)", () => {
  const SD3 = {
    source: "a red cat",
    target: "a blue cat",
    source_tokens: sd3Rows(["a", "red", "cat"]), // CLIP: BOS a red cat EOS = 0..4; T5: a red cat </s> = 77..80
    target_tokens: sd3Rows(["a", "blue", "cat"]),
    links: [[0, 0, 1], [1, 1, 1], [2, 2, 1], [3, 3, 1], [4, 4, 1], [77, 77, 1], [78, 78, 1], [79, 79, 1], [80, 80, 1]],
  };
  const rowOf = (el, side, segment) => el.querySelector(`.p2p-aligner__row[data-side="${side}"][data-segment="${segment}"]`);
  const texts = (row) => [...row.querySelectorAll(".p2p-aligner__chip")].map((c) => c.textContent);

  it("shows a labelled pair of rows per segment, each holding its own tokens", async () => {
    const { el } = await mount(SD3);
    const pairs = [...el.querySelectorAll(".p2p-aligner__pair")];
    expect(pairs.map((p) => p.dataset.segment)).toEqual(["CLIP", "T5"]);
    expect(texts(rowOf(el, "source", "CLIP"))).toEqual(["a", "red", "cat"]);
    expect(texts(rowOf(el, "target", "T5"))).toEqual(["a", "blue", "cat"]);
    expect(rowOf(el, "source", "T5").querySelector(".p2p-aligner__rowlabel").textContent).toBe("sourceT5");
    expect(rowOf(el, "source", "T5").getAttribute("aria-label")).toBe("source tokens, T5");
    expect(chip(el, "source", 78).getAttribute("aria-label")).toBe('source token red (T5), position 78, linked');
    expect(el.querySelector(".p2p-aligner__segmenthelp").hidden).toBe(false);
    expect(el.querySelector(".p2p-aligner__segmenthelp").textContent).toMatch(/CLIP and T5 tokens, a pair of rows each/);
    // one heat map per segment, its cells at the positions over the whole prompt
    const heats = [...el.querySelectorAll(".p2p-aligner__heat")];
    expect(heats.map((h) => h.querySelector("caption").textContent)).toEqual([
      "M, CLIP tokens: source tokens (rows) feed target tokens (columns)",
      "M, T5 tokens: source tokens (rows) feed target tokens (columns)",
    ]);
    expect(heats[1].querySelector('td[data-i="78"][data-j="78"]').textContent).toBe("1");
    expect(heats[0].querySelectorAll("td")).toHaveLength(3 * 3);
  });

  it("links within a segment and refuses a link across segments, saying why", async () => {
    const { el, model } = await mount({ ...SD3, links: [] });
    chip(el, "source", 2).click(); // CLIP "red"
    chip(el, "target", 78).click(); // T5 "blue": another segment
    expect(model.saves).toBe(0);
    expect(live(el)).toMatch(/"red" \(CLIP\) links to target tokens of CLIP only/);
    expect(chip(el, "source", 2).getAttribute("aria-pressed")).toBe("true"); // still picked
    chip(el, "target", 2).click(); // CLIP "blue"
    expect(model.get("links")).toEqual([[2, 2, 1]]);
    chip(el, "target", 78).click(); // T5 blue, then T5 red
    chip(el, "source", 78).click();
    expect(model.get("links")).toEqual([[2, 2, 1], [78, 78, 1]]);
    expect(live(el)).toMatch(/linked "red" \(T5\) to "blue" \(T5\)/);
    const items = [...el.querySelectorAll(".p2p-aligner__item")].map((r) => r.textContent);
    expect(items[1]).toMatch(/^red \(T5\)→blue \(T5\)/);
  });

  it("a drop on another segment's chip links nothing", async () => {
    const { el, model } = await mount({ ...SD3, links: [] });
    pointer(chip(el, "source", 78), "pointerdown", 10, 10);
    pointer(chip(el, "source", 78), "pointermove", 40, 60);
    pointer(chip(el, "target", 2), "pointermove", 40, 60);
    pointer(chip(el, "target", 2), "pointerup", 40, 60);
    expect(model.saves).toBe(0);
    expect(live(el)).toMatch(/not linked: "red" \(T5\) and "blue" \(CLIP\) are in different token segments/);
  });

  it("Down and Up walk the rows top to bottom: CLIP source, CLIP target, T5 source, T5 target", async () => {
    const { el } = await mount(SD3);
    chip(el, "source", 1).focus();
    key(chip(el, "source", 1), "ArrowDown");
    expect(document.activeElement.dataset).toMatchObject({ side: "target", segment: "CLIP" });
    key(document.activeElement, "ArrowDown");
    expect(document.activeElement.dataset).toMatchObject({ side: "source", segment: "T5", pos: "77" });
    key(document.activeElement, "ArrowRight");
    expect(document.activeElement.dataset.pos).toBe("78");
    key(document.activeElement, "ArrowUp");
    expect(document.activeElement.dataset).toMatchObject({ side: "target", segment: "CLIP" });
    // one tab stop per row
    expect([...el.querySelectorAll('.p2p-aligner__chip[tabindex="0"]')]).toHaveLength(4);
  });

  it("a prompt of one segment keeps one unlabelled pair and no segment help", async () => {
    const { el } = await mount();
    expect([...el.querySelectorAll(".p2p-aligner__pair")].map((p) => p.dataset.segment)).toEqual([""]);
    expect(el.querySelector(".p2p-aligner__rowsegment")).toBeNull();
    expect(el.querySelector(".p2p-aligner__segmenthelp").hidden).toBe(true);
    expect(el.querySelectorAll(".p2p-aligner__heat")).toHaveLength(1);
  });
});
