// The UNet strip under the playback bar: one box per block (down, mid, up, lower for coarser
// resolutions), one cell per attention layer and hooked module, filled where a rule changed it at
// the step shown. Built again only when the cells change; each draw sets which cells are on.
import { KIND_LETTERS, cellTitle, controlledAt, describeStep, groupBlocks, readCells } from "./unet_strip.js";

/** @typedef {import("./view.js").PlayerView} PlayerView */

const COMPACT_ABOVE = 48; // cells (SD 1.x/2.x have 32)

function build(v, cells) {
  const blocks = groupBlocks(cells).map((block) =>
    v.el("div", { class: "p2p-player__block", style: { "--p2p-depth": String(block.depth) } }, [
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
      v.el("span", { class: "p2p-player__blocklabel", text: block.block }),
    ])
  );
  v.unetCells.replaceChildren(...blocks);
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
