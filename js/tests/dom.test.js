// @vitest-environment happy-dom
import { describe, expect, it } from "vitest";
import { button, createBuilder, selectOf } from "../lib/dom.js";

const el = createBuilder(document);
const MARKUP = '<img src=x onerror="globalThis.pwned = 1"><b>bold</b> & &amp;';

describe("element builder", () => {
  it("sets class, text, properties, attributes, dataset and style", () => {
    const node = el("input", {
      class: "a b",
      type: "range",
      min: "0",
      max: "10",
      value: "7",
      tabIndex: 0,
      hidden: true,
      role: "slider",
      "aria-label": "step",
      "aria-pressed": false,
      dataset: { side: "source", pos: 3 },
      style: { left: "25%", "--p2p-n": 4 },
    });
    expect(node.tagName).toBe("INPUT");
    expect(node.className).toBe("a b");
    expect([node.type, node.min, node.max, node.value]).toEqual(["range", "0", "10", "7"]);
    expect(node.tabIndex).toBe(0);
    expect(node.hidden).toBe(true);
    expect(node.getAttribute("role")).toBe("slider");
    expect(node.getAttribute("aria-label")).toBe("step");
    expect(node.getAttribute("aria-pressed")).toBe("false");
    expect(node.dataset.side).toBe("source");
    expect(node.dataset.pos).toBe("3");
    expect(node.style.left).toBe("25%");
    expect(node.style.getPropertyValue("--p2p-n")).toBe("4");
  });

  it("a name the element lacks as a property becomes an attribute (spellcheck off everywhere)", () => {
    const node = el("input", { type: "text", spellcheck: false, accept: "image/*" });
    expect(node.getAttribute("spellcheck")).toBe("false");
    expect(node.getAttribute("accept")).toBe("image/*");
  });

  it("skips null, undefined and an empty class", () => {
    const node = el("div", { class: "", title: undefined, "aria-label": null });
    expect(node.hasAttribute("class")).toBe(false);
    expect(node.hasAttribute("title")).toBe(false);
    expect(node.hasAttribute("aria-label")).toBe(false);
  });

  it("sets text with textContent only: markup stays text", () => {
    const node = el("span", { text: MARKUP });
    expect(node.textContent).toBe(MARKUP);
    expect(node.children).toHaveLength(0);
    expect(node.querySelector("img, b")).toBeNull();
    expect(globalThis.pwned).toBeUndefined();
  });

  it("string and number children become text nodes, never markup; null and false are skipped", () => {
    const inner = el("b", { text: "x" });
    const node = el("label", {}, [MARKUP, null, inner, false, undefined, 42]);
    expect(node.childNodes).toHaveLength(3);
    expect(node.childNodes[0].nodeType).toBe(Node.TEXT_NODE);
    expect(node.childNodes[0].textContent).toBe(MARKUP);
    expect(node.childNodes[1]).toBe(inner);
    expect(node.childNodes[2].textContent).toBe("42");
    expect(node.querySelectorAll("*")).toHaveLength(1); // only the <b> passed as a node
  });

  it("text() makes a text node", () => {
    const t = el.text(MARKUP);
    expect(t.nodeType).toBe(Node.TEXT_NODE);
    expect(t.textContent).toBe(MARKUP);
  });

  it("never touches innerHTML", () => {
    const proto = Element.prototype;
    const desc = Object.getOwnPropertyDescriptor(proto, "innerHTML");
    let writes = 0;
    Object.defineProperty(proto, "innerHTML", {
      configurable: true,
      get: desc.get,
      set(v) {
        writes += 1;
        desc.set.call(this, v);
      },
    });
    try {
      el("div", { class: "c", text: MARKUP }, [MARKUP, el("span", { text: MARKUP })]);
      el.svg("title", {}, [MARKUP]);
    } finally {
      Object.defineProperty(proto, "innerHTML", desc);
    }
    expect(writes).toBe(0);
  });

  it("builds SVG elements in the SVG namespace with attributes", () => {
    const line = el.svg("line", { class: "p2p-aligner__link", x1: 1.5, "data-i": 2, visibility: "hidden" });
    expect(line.namespaceURI).toBe("http://www.w3.org/2000/svg");
    expect(line.getAttribute("class")).toBe("p2p-aligner__link");
    expect(line.getAttribute("x1")).toBe("1.5");
    expect(line.getAttribute("data-i")).toBe("2");
    expect(line.getAttribute("visibility")).toBe("hidden");
  });

  it("uses the document it was made for", () => {
    const other = document.implementation.createHTMLDocument("other");
    const node = createBuilder(other)("p", { text: "x" });
    expect(node.ownerDocument).toBe(other);
  });

  it("selectOf builds options, button builds a non-submitting .p2p-btn", () => {
    const select = selectOf(el, { class: "k", "aria-label": "kind" }, [["a", "<A>"], ["b", "B"]]);
    expect([...select.options].map((o) => [o.value, o.textContent])).toEqual([["a", "<A>"], ["b", "B"]]);
    expect(select.getAttribute("aria-label")).toBe("kind");
    const b = button(el, "p2p-x__run", "Run", { "aria-label": "run" });
    expect([b.className, b.type, b.textContent, b.getAttribute("aria-label")]).toEqual(["p2p-btn p2p-x__run", "button", "Run", "run"]);
  });
});
