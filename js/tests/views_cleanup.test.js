// @vitest-environment happy-dom
// Every view, torn down, leaves no DOM listener, model listener or element behind.
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import * as aligner from "../src/aligner.js";
import * as ping from "../src/ping.js";
import * as player from "../src/player.js";
import * as studio from "../src/studio.js";
import * as timeline from "../src/timeline.js";
import { FakeModel, instantiate } from "./fake-model.js";

const STATES = {
  aligner: { source: "a cat", target: "a dog", source_tokens: [], target_tokens: [], links: [], show_special: false, kind: "auto" },
  ping: { label: "x", count: 0 },
  player: { status: "idle", n_evals: 0, prompts: [], grids: [], step: 0, playing: false, follow: true, tokens: [], resolution: 0,
    normalize: "token", opacity: 0.6, fps: 6 },
  studio: { source: "a", target: "b", seed: 0, steps: 10, guidance: 5, kind: "auto", windows: { cross: [0, 8], self_attn: [0, 4],
    words: [], blend_start: 2 }, reweight: {}, blend_words: [], blend_threshold: 0.3, baseline: false, source_words: ["a"],
  target_words: ["b"], has_timeline: false, status: "idle", progress: [0, 0], images: [], spec_json: "", model_name: "" },
  timeline: { target: "a b", words: ["a", "b"], timesteps: [981, 961, 941], n_evals: 3,
    windows: { cross: [0, 2], self_attn: [0, 1], words: [["a", 0, 1]], blend_start: 1 }, playhead: 1 },
};
const MODULES = { aligner, ping, player, studio, timeline };

// the prototype that really holds addEventListener for this DOM's nodes
function listenerProto() {
  let proto = Object.getPrototypeOf(document.createElement("div"));
  while (proto && !Object.prototype.hasOwnProperty.call(proto, "addEventListener")) proto = Object.getPrototypeOf(proto);
  return proto;
}

let live;
let saved;
let proto;
beforeEach(() => {
  // count listeners attached right now, per (target, type, listener, capture)
  live = new Map();
  proto = listenerProto();
  saved = { add: proto.addEventListener, remove: proto.removeEventListener };
  const keyOf = (target, type, fn, opts) => {
    const capture = typeof opts === "boolean" ? opts : !!(opts && opts.capture);
    let perTarget = live.get(target);
    if (!perTarget) live.set(target, (perTarget = new Map()));
    return [perTarget, `${type}|${capture}`, fn];
  };
  proto.addEventListener = function (type, fn, opts) {
    const [perTarget, k, f] = keyOf(this, type, fn, opts);
    if (!perTarget.has(k)) perTarget.set(k, new Set());
    perTarget.get(k).add(f);
    return saved.add.call(this, type, fn, opts);
  };
  proto.removeEventListener = function (type, fn, opts) {
    const [perTarget, k, f] = keyOf(this, type, fn, opts);
    if (perTarget.has(k)) perTarget.get(k).delete(f);
    return saved.remove.call(this, type, fn, opts);
  };
});
afterEach(() => {
  proto.addEventListener = saved.add;
  proto.removeEventListener = saved.remove;
});

function attachedIn(root) {
  let n = 0;
  for (const [target, perTarget] of live) {
    if (!(target instanceof Node) || !(target === root || root.contains(target))) continue;
    for (const fns of perTarget.values()) n += fns.size;
  }
  return n;
}

describe("view cleanup", () => {
  for (const name of Object.keys(MODULES)) {
    it(`${name}: every DOM and model listener is removed, and the DOM`, async () => {
      const widget = await instantiate(MODULES[name]);
      const model = new FakeModel(structuredClone(STATES[name]));
      const stopInit = widget.initialize ? await widget.initialize({ model }) : null;
      const el = document.createElement("div");
      document.body.append(el);
      const stop = await widget.render({ model, el });
      const root = el.firstElementChild;
      expect(root.classList.contains("p2p-root")).toBe(true); // the shared root style
      expect(attachedIn(root)).toBeGreaterThan(0);
      expect(model.listenerCount()).toBeGreaterThan(0);
      stop();
      if (stopInit) stopInit();
      expect(attachedIn(root)).toBe(0);
      expect(model.listenerCount()).toBe(0);
      expect(el.children).toHaveLength(0);
      el.remove();
    });
  }

  it("every entry exports the factory shape", () => {
    for (const mod of Object.values(MODULES)) expect(typeof mod.default).toBe("function");
  });
});
