// @vitest-environment happy-dom
import { describe, expect, it, vi } from "vitest";
import { createScope } from "../lib/scope.js";
import { FakeModel } from "./fake-model.js";

/** Wrap add/removeEventListener of `target` to count the listeners attached right now. */
function track(target) {
  const live = new Set();
  const add = target.addEventListener.bind(target);
  const remove = target.removeEventListener.bind(target);
  const capture = (opts) => (typeof opts === "boolean" ? opts : !!(opts && opts.capture));
  target.addEventListener = (type, fn, opts) => {
    live.add(`${type}|${capture(opts)}|${fn.name}`);
    add(type, fn, opts);
  };
  target.removeEventListener = (type, fn, opts) => {
    live.delete(`${type}|${capture(opts)}|${fn.name}`);
    remove(type, fn, opts);
  };
  return live;
}

describe("listener scope", () => {
  it("dispose removes every DOM and model listener it added", () => {
    const scope = createScope();
    const root = document.createElement("div");
    const input = document.createElement("input");
    root.append(input);
    const liveRoot = track(root);
    const liveInput = track(input);
    const model = new FakeModel({ a: 1, b: 2 });
    const calls = [];
    const onClick = () => calls.push("click");
    const onCapture = () => calls.push("capture");
    const onChange = () => calls.push("change");
    const onModel = () => calls.push("model");
    scope.on(root, "click", onClick);
    scope.on(root, "click", onCapture, { capture: true });
    scope.on(input, "change", onChange);
    scope.onModel(model, ["change:a", "change:b"], onModel);
    scope.onModel(model, "msg:custom", onModel);
    expect(liveRoot.size).toBe(2);
    expect(liveInput.size).toBe(1);
    expect(model.listenerCount()).toBe(3);

    root.click();
    input.dispatchEvent(new Event("change"));
    model.set("a", 5);
    model.receive({ type: "x" });
    expect(calls).toEqual(["capture", "click", "change", "model", "model"]);

    scope.dispose();
    expect(liveRoot.size).toBe(0);
    expect(liveInput.size).toBe(0);
    expect(model.listenerCount()).toBe(0);
    calls.length = 0;
    root.click();
    input.dispatchEvent(new Event("change"));
    model.set("b", 7);
    model.receive({ type: "x" });
    expect(calls).toEqual([]);
    expect(scope.disposed).toBe(true);
  });

  it("runs other cleanups newest first, once", () => {
    const scope = createScope();
    const order = [];
    scope.add(() => order.push(1));
    scope.add(null);
    scope.add(() => order.push(2));
    scope.dispose();
    scope.dispose();
    expect(order).toEqual([2, 1]);
  });

  it("keeps going when a cleanup throws, then rethrows the first error", () => {
    const scope = createScope();
    const model = new FakeModel();
    const fn = vi.fn();
    scope.onModel(model, "change:x", fn);
    scope.add(() => {
      throw new Error("first");
    });
    scope.add(() => {
      throw new Error("second");
    });
    expect(() => scope.dispose()).toThrow("second"); // newest first: "second" fails first
    expect(model.listenerCount()).toBe(0);
  });

  it("after dispose attaches nothing and runs added cleanups at once", () => {
    const scope = createScope();
    scope.dispose();
    const root = document.createElement("div");
    const live = track(root);
    const model = new FakeModel();
    scope.on(root, "click", () => {});
    scope.onModel(model, "change:x", () => {});
    const cleanup = vi.fn();
    scope.add(cleanup);
    expect(live.size).toBe(0);
    expect(model.listenerCount()).toBe(0);
    expect(cleanup).toHaveBeenCalledTimes(1);
  });
});
