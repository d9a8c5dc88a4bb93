// The model strip under the playback bar: one box per block, one cell per attention site and
// hooked module, filled where a rule changed it at the step shown. A UNet's blocks sit lower for
// coarser resolutions (a flattened U: down, mid, up); a DiT's double-stream then single-stream
// blocks sit in one row each, by index. Built again only when the cells change; each draw sets
// which cells are on.
import {
  KIND_LETTERS,
  KIND_NAMES,
  blockLabel,
  cellTitle,
  controlledAt,
  describeStep,
  groupBlocks,
  groupStreams,
  kindsOf,
  readCells,
  stripLayout,
} from "./unet_strip.js";

/** @typedef {import("./view.js").PlayerView} PlayerView */

const COMPACT_ABOVE = 48; // cells (SD 1.x/2.x have 32)

function blockBox(v, block, layout) {
  const depth = layout === "unet" ? block.depth : 0; // a DiT's blocks are one level: a row, not a U
  return v.el("div", { class: "p2p-player__block", dataset: { block: block.block }, style: { "--p2p-depth": String(depth) } }, [
      v.el(
        "div",
        { class: "p2p-player__cells" },
        block.cells.map((c) =>
          v.el("span", {
            class: `p2p-player__cell p2p-player__cell--${c.kind}`,
            text: KIND_LETTERS[c.kind],
            dataset: { index: c.index, kind: c.kind, on: "false" },
          })
        )
      ),
      v.el("span", { class: "p2p-player__blocklabel", text: blockLabel(block.block, layout) }),
    ]);
}

function build(v, cells) {
  const layout = stripLayout(cells);
  if (layout === "unet") {
    v.unetCells.replaceChildren(...groupBlocks(cells).map((block) => blockBox(v, block, layout)));
  } else {
    v.unetCells.replaceChildren(
      ...groupStreams(cells).map((s) =>
        v.el("div", { class: "p2p-player__stream", dataset: { stream: s.stream } }, [
          v.el("span", { class: "p2p-player__streamlabel", text: s.name }),
          v.el("div", { class: "p2p-player__streamblocks" }, s.blocks.map((block) => blockBox(v, block, layout))),
        ])
      )
    );
  }
  v.unetCells.dataset.layout = layout;
  v.unetLegend.replaceChildren(
    ...kindsOf(cells).map((kind) =>
      v.el("span", {}, [
        v.el("span", { class: `p2p-player__cell p2p-player__cell--${kind}`, text: KIND_LETTERS[kind], dataset: { on: "true" } }),
        ` ${KIND_NAMES[kind]}`,
      ])
    )
  );
  // SDXL has 140 attention layers: narrower cells without letters keep the whole UNet in view
  v.unetCells.dataset.compact = String(cells.length > COMPACT_ABOVE);
}

/** Show what the rules controlled at `step` (nothing when the run has no cells). */
export function drawStrip(v, step) {
  const cells = readCells(v.model.get("unet_cells"));
  v.unet.hidden = cells.length === 0;
  if (!cells.length) return;
  const key = JSON.stringify(cells);
  if (key !== v.stripKey) {
    v.stripKey = key;
    build(v, cells);
  }
  const on = controlledAt(v.model.get("controlled"), step);
  for (const node of v.unetCells.querySelectorAll(".p2p-player__cell")) {
    const i = Number(node.dataset.index);
    const hit = on !== null && on.has(i);
    node.dataset.on = String(hit);
    node.title = cellTitle(cells[i], on === null ? null : hit);
  }
  v.unet.dataset.step = String(step);
  v.unetSummary.textContent = describeStep(cells, on, step);
}
