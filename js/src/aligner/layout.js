// The aligner's fixed parts: toolbar (prompts, auto-align, BOS/EOS), help, the stage with the SVG
// layer of links (and a pair of chip rows per token segment, built as the tokens come), the links
// list and the heat maps of M.
import { button, selectOf } from "../../lib/dom.js";

export const SIDES = ["source", "target"];

const HELP =
  "Drag a source token onto a target token, or pick a token (click, Enter or Space) and then place it on " +
  "the other row. Arrows move between tokens, Down/Up between rows, Escape cancels, Delete removes a " +
  "token's links. Click a link to remove it. Target tokens without a link are new: they keep their own attention.";

/** @param {import("../../lib/dom.js").Builder} el */
function toolbar(el) {
  const inputs = {};
  const fields = SIDES.map((side) => {
    inputs[side] = el("input", {
      class: "p2p-aligner__input p2p-focusable",
      type: "text",
      dataset: { side },
      spellcheck: false,
    });
    return el("label", { class: "p2p-aligner__field" }, [
      el("span", { class: "p2p-aligner__fieldname", text: side }),
      inputs[side],
    ]);
  });
  const kindSelect = selectOf(el, { class: "p2p-aligner__kind p2p-focusable", "aria-label": "auto-align method" },
    ["auto", "replace", "refine"].map((kind) => [kind, kind]));
  const autoButton = button(el, "p2p-aligner__auto", "Auto-align");
  const specialBox = el("input", { class: "p2p-focusable", type: "checkbox" });
  const specialText = el("span", { text: "show BOS/EOS" }); // "show EOS" on T5's prompts (Flux), which have no BOS
  const specialLabel = el("label", { class: "p2p-aligner__special" }, [specialBox, specialText]);
  const bar = el("div", { class: "p2p-aligner__toolbar" }, [...fields, kindSelect, autoButton, specialLabel]);
  return { bar, inputs, kindSelect, autoButton, specialBox, specialText };
}

/**
 * One token segment's pair of rows: its source tokens above its target tokens, the links between
 * them drawn in the band between the two. A prompt of one segment (SD, Flux) has one pair; SD3's
 * has one for CLIP's tokens and one for T5's, each row labelled with its segment.
 * @param {import("../../lib/dom.js").Builder} el
 * @param {string} segment  the segment's name ("" for a prompt of one segment)
 */
export function segmentPair(el, segment) {
  const chipBoxes = {};
  const rows = SIDES.map((side) => {
    chipBoxes[side] = el("div", { class: "p2p-aligner__chips" });
    const label = el("span", { class: "p2p-aligner__rowlabel" }, [el.text(side)]);
    if (segment) label.append(el("span", { class: "p2p-aligner__rowsegment", text: segment }));
    const name = segment ? `${side} tokens, ${segment}` : `${side} tokens`;
    return el("div", { class: "p2p-aligner__row", dataset: { side, segment }, role: "group", "aria-label": name }, [
      label,
      chipBoxes[side],
    ]);
  });
  const pair = el("div", { class: "p2p-aligner__pair", dataset: { segment } }, rows);
  return { pair, chipBoxes };
}

/** @param {import("../../lib/dom.js").Builder} el */
function stage(el) {
  const linkLayer = el.svg("g");
  const ghost = el.svg("line", { class: "p2p-aligner__ghost", visibility: "hidden" });
  const svg = el.svg("svg", { class: "p2p-aligner__links", "aria-hidden": "true" }, [linkLayer, ghost]);
  // the pairs of rows (one per token segment) come in after the links layer: chips.js builds them
  const box = el("div", { class: "p2p-aligner__stage" }, [svg]);
  // the rows never wrap (see lines.js): a long prompt scrolls the stage sideways
  const scroller = el("div", { class: "p2p-aligner__scroller" }, [box]);
  return { scroller, box, svg, linkLayer, ghost };
}

/** @param {import("../../lib/dom.js").Builder} el */
function panels(el) {
  const listBody = el("tbody");
  const list = el("table", { class: "p2p-aligner__list" }, [
    el("caption", { text: "Links (source → target, weight)" }),
    listBody,
  ]);
  const listEmpty = el("p", { class: "p2p-aligner__empty", text: "No links: every target token keeps its own attention." });
  // one heat map of M per token segment (M is block-diagonal over them), built by panels.js
  const heatBox = el("div", { class: "p2p-aligner__heatbox" });
  const box = el("div", { class: "p2p-aligner__panels" }, [
    el("div", { class: "p2p-aligner__listbox" }, [list, listEmpty]),
    heatBox,
  ]);
  return { box, list, listBody, listEmpty, heatBox };
}

/**
 * @param {import("../../lib/dom.js").Builder} el
 * @param {string} uid  unique prefix for ids (the help text is the chips' description)
 */
export function layout(el, uid) {
  const tools = toolbar(el);
  const help = el("p", { class: "p2p-aligner__help", text: HELP, id: `${uid}-help` });
  // shown where the prompts run over several token segments (SD3: CLIP's, then T5's)
  const segmentHelp = el("p", { class: "p2p-aligner__help p2p-aligner__segmenthelp", hidden: true });
  const st = stage(el);
  const pn = panels(el);
  // says what a new link did to its source's other links (their weights shared out)
  const notice = el("p", { class: "p2p-aligner__notice" });
  notice.hidden = true;
  const root = el("div", { class: "p2p-aligner p2p-root", "data-lm-suppress-shortcuts": "true" }, [
    tools.bar,
    help,
    segmentHelp,
    st.scroller,
    notice,
    pn.box,
  ]);
  return {
    root,
    help,
    segmentHelp,
    inputs: tools.inputs,
    kindSelect: tools.kindSelect,
    autoButton: tools.autoButton,
    specialBox: tools.specialBox,
    specialText: tools.specialText,
    stage: st.box,
    scroller: st.scroller,
    notice,
    svg: st.svg,
    linkLayer: st.linkLayer,
    ghost: st.ghost,
    list: pn.list,
    listBody: pn.listBody,
    listEmpty: pn.listEmpty,
    heatBox: pn.heatBox,
  };
}
