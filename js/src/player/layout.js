// The player's fixed parts: the playback bar, the UNet strip (what the rule controls), the map
// options, the rows, and a live region.
import { button, selectOf } from "../../lib/dom.js";

/** @param {import("../../lib/dom.js").Builder} el */
function playbackBar(el) {
  const playButton = button(el, "p2p-player__play", "Play", { "aria-label": "play" });
  const slider = el("input", {
    class: "p2p-player__slider",
    type: "range",
    min: "0",
    max: "0",
    step: "1",
    value: "0",
    "aria-label": "step",
  });
  const stepLabel = el("span", { class: "p2p-player__step", text: "no frames yet" });
  const followBox = el("input", { type: "checkbox" });
  const box = el("div", { class: "p2p-player__bar" }, [
    playButton,
    slider,
    stepLabel,
    el("label", { class: "p2p-player__follow" }, [followBox, " follow live"]),
  ]);
  return { box, playButton, slider, stepLabel, followBox };
}

/** @param {import("../../lib/dom.js").Builder} el */
function options(el) {
  const resSelect = el("select", { class: "p2p-btn p2p-player__resolution" });
  const normSelect = selectOf(el, { class: "p2p-btn p2p-player__normalize" }, [
    ["token", "per token"],
    ["global", "shared (global)"],
  ]);
  const opacity = el("input", { class: "p2p-player__opacity", type: "range", min: "0", max: "1", step: "0.05" });
  const gifButton = button(el, "p2p-player__gif", "Save GIF");
  const box = el("div", { class: "p2p-player__opts" }, [
    el("label", {}, ["maps ", resSelect]),
    el("label", {}, ["scale ", normSelect]),
    el("label", {}, ["overlay ", opacity]),
    el("span", {
      class: "p2p-player__note",
      text: "heads: mean",
      title: "maps are averaged over attention heads and over the layers of each grid",
    }),
    gifButton,
  ]);
  return { box, resSelect, normSelect, opacity, gifButton };
}

/** @param {import("../../lib/dom.js").Builder} el */
function unetStrip(el) {
  const unetCells = el("div", { class: "p2p-player__unetcells", "aria-hidden": "true" });
  const unetSummary = el("p", { class: "p2p-player__unetsummary" });
  // the kinds the model's cells hold (strip.js fills it: S / C / F on a UNet, J / 1 / I on a DiT)
  const unetLegend = el("div", { class: "p2p-player__legend", "aria-hidden": "true" });
  const unet = el("div", { class: "p2p-player__unet", role: "group", "aria-label": "what the rule controls", hidden: true }, [
    el("div", { class: "p2p-player__unethead" }, [
      el("span", { class: "p2p-player__unettitle", text: "Rule control (filled: changed at this step)" }),
      unetLegend,
    ]),
    unetCells,
    unetSummary,
  ]);
  return { unet, unetCells, unetSummary, unetLegend };
}

/** @param {import("../../lib/dom.js").Builder} el */
export function layout(el) {
  const { box: barBox, ...barParts } = playbackBar(el);
  const { box: optsBox, ...optParts } = options(el);
  const strip = unetStrip(el);
  const rows = el("div", { class: "p2p-player__rows" });
  const empty = el("p", {
    class: "p2p-player__empty",
    text: "Waiting for a run: frames appear here while the sampler runs.",
  });
  const live = el("div", { class: "p2p-sr-only", "aria-live": "polite", role: "status" });
  const root = el(
    "div",
    {
      class: "p2p-player p2p-root",
      tabIndex: 0,
      role: "group",
      "aria-label": "attention playback",
      "data-lm-suppress-shortcuts": "true",
    },
    [barBox, strip.unet, optsBox, rows, empty, live]
  );
  return { root, ...barParts, ...optParts, ...strip, rows, empty, live };
}
