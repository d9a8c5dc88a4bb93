// @vitest-environment happy-dom
import { afterEach, describe, expect, it } from "vitest";
import * as pingModule from "../src/ping.js";
import { FakeModel, instantiate } from "./fake-model.js";

const mounted = [];

async function mount(state = {}) {
  const widget = await instantiate(pingModule);
  const model = new FakeModel({ label: "hello", count: 0, ...state });
  const stopInit = widget.initialize ? await widget.initialize({ model }) : undefined;
  const el = document.createElement("div");
  document.body.appendChild(el);
  const stopRender = await widget.render({ model, el });
  mounted.push(el);
  return { widget, model, el, stopInit, stopRender };
}

afterEach(() => {
  for (const el of mounted.splice(0)) el.remove();
});

describe("ping view", () => {
  it("shows the label as text, never as markup", async () => {
    const { el, model } = await mount({ label: "<b>bold</b> & <img src=x onerror=alert(1)>" });
    const label = el.querySelector(".p2p-ping__label");
    expect(label.textContent).toBe("<b>bold</b> & <img src=x onerror=alert(1)>");
    expect(label.querySelector("b, img")).toBeNull();
    model.set("label", "a cat <riding>");
    expect(label.textContent).toBe("a cat <riding>");
  });

  it("increments count and saves on click", async () => {
    const { el, model } = await mount({ count: 41 });
    const button = el.querySelector("button.p2p-ping__button");
    button.click();
    button.click();
    expect(model.get("count")).toBe(43);
    expect(model.saves).toBe(2);
    expect(el.querySelector(".p2p-ping__count").textContent).toBe("count: 43");
  });

  it("follows count changes made in Python", async () => {
    const { el, model } = await mount();
    model.set("count", 7);
    expect(el.querySelector(".p2p-ping__count").textContent).toBe("count: 7");
  });

  it("acknowledges a frame with its byte sum once, and sizes the canvas", async () => {
    const { el, model } = await mount();
    model.receive({ type: "frame", shape: [2, 3], seq: 5 }, [Uint8Array.from([1, 2, 3, 4, 5, 250])]);
    expect(model.sent).toEqual([{ content: { type: "frame_ack", sum: 265, seq: 5 }, buffers: [] }]);
    const canvas = el.querySelector("canvas");
    expect([canvas.width, canvas.height]).toEqual([3, 2]);
    expect(canvas.dataset.sum).toBe("265");
  });

  it("reports a malformed frame to Python instead of throwing", async () => {
    const { model } = await mount();
    model.receive({ type: "frame", shape: [2, 2] }, [Uint8Array.from([1, 2, 3])]);
    expect(model.sent).toHaveLength(1);
    expect(model.sent[0].content.type).toBe("client_error");
    expect(model.sent[0].content.message).toMatch(/needs 4/);
  });

  it("ignores custom messages of other types", async () => {
    const { model } = await mount();
    model.receive({ type: "something_else" });
    expect(model.sent).toEqual([]);
  });

  it("shows the error trait in a banner and hides it when cleared", async () => {
    const { el, model } = await mount();
    const banner = el.querySelector(".p2p-error");
    expect(banner.hidden).toBe(true);
    model.set("error", "frame_ack: <sum> must be an int");
    expect(banner.hidden).toBe(false);
    expect(banner.getAttribute("role")).toBe("alert");
    expect(banner.textContent).toBe("frame_ack: <sum> must be an int");
    model.set("error", "");
    expect(banner.hidden).toBe(true);
  });

  it("a second view of the same model draws the latest frame", async () => {
    const widget = await instantiate(pingModule);
    const model = new FakeModel({ label: "x", count: 0 });
    await widget.initialize({ model });
    model.receive({ type: "frame", shape: [1, 2] }, [Uint8Array.from([10, 20])]);
    const el = document.createElement("div");
    await widget.render({ model, el });
    expect(el.querySelector("canvas").dataset.sum).toBe("30");
    expect(model.sent).toHaveLength(1); // one ack per frame, not per view
  });

  it("cleanup removes every listener and the DOM", async () => {
    const { el, model, stopInit, stopRender } = await mount();
    expect(model.listenerCount()).toBeGreaterThan(0);
    stopRender();
    stopInit();
    expect(model.listenerCount()).toBe(0);
    expect(el.children).toHaveLength(0);
  });
});
