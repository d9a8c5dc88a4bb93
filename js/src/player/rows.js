// One row per prompt: its text, the x0 preview and one heat-map tile per selected token, and a
// chip per token to select it. Rebuilt only when the run, the tokens or the selection change.
import { tokenLabel } from "../../lib/heatmap.js";

/** @typedef {import("./view.js").PlayerView} PlayerView */

const ROLE_NAMES = ["source", "edit"];

function roleName(b, n) {
  if (b === 0) return ROLE_NAMES[0];
  return n > 2 ? `edit ${b}` : ROLE_NAMES[1];
}

function tile(el, canvas, caption) {
  return el("figure", { class: "p2p-player__tile" }, [canvas, el("figcaption", { text: caption })]);
}

function tokenChips(v, prompt, b, role, sel) {
  return v.el(
    "div",
    { class: "p2p-player__chips", role: "group", "aria-label": `tokens of the ${role} prompt` },
    // SD3's segments are padded to their lengths: the padding positions keep their maps but get no chip
    prompt.tokens.flatMap((token, pos) =>
      token === "<pad>" ? [] : v.el("button", {
        class: "p2p-btn p2p-player__chip",
        text: tokenLabel(prompt.tokens, pos),
        type: "button",
        dataset: { prompt: b, token: pos },
        "aria-pressed": sel.some(([sb, sp]) => sb === b && sp === pos) ? "true" : "false",
      })
    )
  );
}

function promptRow(v, prompt, b, count, sel) {
  const el = v.el;
  const role = roleName(b, count);
  const preview = el("canvas", {
    class: "p2p-player__canvas p2p-player__canvas--preview",
    role: "img",
    "aria-label": `${role} x0 prediction`,
  });
  const strip = el("div", { class: "p2p-player__tiles" }, [tile(el, preview, "x0")]);
  const entry = { b, preview, tiles: [] };
  for (const [pb, pos] of sel) {
    if (pb !== b || pos >= prompt.tokens.length) continue;
    const label = tokenLabel(prompt.tokens, pos);
    const canvas = el("canvas", {
      class: "p2p-player__canvas p2p-player__canvas--heat",
      dataset: { token: pos },
      role: "img",
      "aria-label": `attention of "${label}"`,
    });
    strip.append(tile(el, canvas, label));
    entry.tiles.push({ pos, canvas });
  }
  const head = el("div", { class: "p2p-player__head" }, [
    el("span", { class: "p2p-player__role", text: role }),
    el("span", { class: "p2p-player__prompt", text: prompt.text }),
  ]);
  const row = el("div", { class: "p2p-player__row", dataset: { prompt: b } }, [head, strip, tokenChips(v, prompt, b, role, sel)]);
  return { row, entry };
}

/** Rebuild the rows if the run, the prompts' tokens or the selection changed. */
export function rebuild(v) {
  const header = v.buffer.header;
  const prompts = header && header.prompts.length ? header.prompts : v.model.get("prompts") || [];
  const sel = v.selected();
  const key = JSON.stringify([header ? header.run : null, prompts.map((p) => p.tokens), sel]);
  if (key === v.structureKey) return;
  v.structureKey = key;
  v.rows.replaceChildren();
  v.tiles = [];
  prompts.forEach((prompt, b) => {
    const { row, entry } = promptRow(v, prompt, b, prompts.length, sel);
    v.rows.append(row);
    v.tiles.push(entry);
  });
}

/** The resolution options: every grid of the frame (or of the run), and all grids averaged. */
export function syncResolutions(v, frame) {
  const grids = frame ? frame.grids.map((g) => [g.h, g.w]) : v.model.get("grids") || [];
  const want = ["0", ...grids.map((g) => String(Math.max(g[0], g[1])))];
  const have = [...v.resSelect.options].map((o) => o.value);
  if (want.join() !== have.join()) {
    v.resSelect.replaceChildren(
      ...want.map((value) => {
        const g = grids.find((x) => String(Math.max(x[0], x[1])) === value);
        return v.el("option", { text: value === "0" ? "all grids (mean)" : `${g[0]}×${g[1]}`, value });
      })
    );
  }
  v.resSelect.value = String(v.model.get("resolution") || 0);
}
