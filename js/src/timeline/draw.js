// Drawing the timeline's rows from the windows: axis with timestep ticks, one track per row with
// its bar and slider handles, the playhead, and the word adder's options.
import { boundaryToPercent, describeBoundary, tickIndices } from "../../lib/timeline.js";
import { bandLabel, describeBand, readBands } from "./rule_bands.js";
import { cssEscape, rowKey, rowLabel, rowsOf, windowOf } from "./rows.js";

/** @typedef {import("./view.js").TimelineView} TimelineView */

const percent = (v, k) => `${boundaryToPercent(k, v.n())}%`;

function playheadNode(v) {
  return v.el("div", { class: "p2p-timeline__playhead" });
}

function renderAxis(v) {
  const count = v.n();
  const ts = v.timesteps();
  const ticks = tickIndices(count, 10).map((i) =>
    v.el("span", {
      class: "p2p-timeline__tick",
      text: String(ts[i]),
      dataset: { index: i },
      style: { left: `${boundaryToPercent(i + 0.5, count)}%` },
      title: `evaluation ${i}, t = ${ts[i]}`,
    })
  );
  const axis = v.el("div", { class: "p2p-timeline__track p2p-timeline__axis", "aria-hidden": "true" }, [
    ...ticks,
    playheadNode(v),
  ]);
  v.grid.append(v.el("div", { class: "p2p-timeline__label p2p-timeline__label--axis", text: "timestep" }), axis);
}

function handleNode(v, row, edge, k, range) {
  return v.el("div", {
    class: "p2p-timeline__handle p2p-focusable",
    dataset: { row: rowKey(row), edge },
    tabIndex: 0,
    role: "slider",
    "aria-orientation": "horizontal",
    "aria-label": row === "blend" ? "LocalBlend start" : `${rowLabel(row)} ${edge}`,
    "aria-valuemin": range[0],
    "aria-valuemax": range[1],
    "aria-valuenow": k,
    "aria-valuetext": describeBoundary(k, v.timesteps()),
    style: { left: percent(v, k) },
  });
}

function rowLabelNode(v, row) {
  const label = v.el("div", { class: "p2p-timeline__label", dataset: { row: rowKey(row) } }, [
    v.el("span", { class: "p2p-timeline__labeltext", text: rowLabel(row) }),
  ]);
  if (typeof row !== "string") {
    label.append(
      v.el("button", {
        class: "p2p-btn p2p-timeline__remove",
        text: "×",
        type: "button",
        dataset: { word: row.word },
        "aria-label": `remove the row of ${row.word}`,
      })
    );
  }
  return label;
}

function renderRow(v, w, row) {
  const n = v.n();
  const track = v.el("div", {
    class: `p2p-timeline__track p2p-timeline__track--${typeof row === "string" ? row : "word"}`,
    dataset: { row: rowKey(row) },
    style: { "--p2p-n": String(Math.max(1, n)) },
  });
  const [start, end] = windowOf(w, row, n);
  track.append(
    v.el("div", {
      class: "p2p-timeline__bar",
      style: { left: percent(v, start), width: percent(v, end - start) },
      dataset: { start, end },
      title: `${rowLabel(row)}: evaluations [${start}, ${end})`,
    })
  );
  if (row === "blend") track.append(handleNode(v, row, "start", start, [0, n]));
  else track.append(handleNode(v, row, "start", start, [0, end]), handleNode(v, row, "end", end, [start, n]));
  track.append(playheadNode(v));
  v.grid.append(rowLabelNode(v, row), track);
}

/** The read-only bands of a rule (`rule_windows`): a heading, then a label and a bar per band. */
function renderBands(v) {
  const n = v.n();
  const bands = readBands(v.model.get("rule_windows"), n);
  v.root.dataset.bands = String(bands.length);
  if (!bands.length) return;
  v.grid.append(
    v.el("div", { class: "p2p-timeline__bandhead", text: "Where the rule acts (read-only)", role: "heading", "aria-level": 4 })
  );
  bands.forEach((band, k) => {
    const text = describeBand(band, v.timesteps());
    const label = v.el("div", { class: "p2p-timeline__label p2p-timeline__label--band", dataset: { band: k } }, [
      v.el("span", { class: "p2p-timeline__labeltext", text: bandLabel(band) }),
    ]);
    // the band is focusable and named by its text alternative: keyboard and screen-reader users
    // reach each one (Tab) and hear its steps; nothing in it can be moved
    const track = v.el(
      "div",
      {
        class: "p2p-timeline__track p2p-timeline__track--band p2p-focusable",
        dataset: { band: k },
        style: { "--p2p-n": String(Math.max(1, n)) },
        tabIndex: 0,
        role: "img",
        "aria-label": text,
        title: text,
      },
      [
        v.el("div", {
          class: "p2p-timeline__bar p2p-timeline__bar--band",
          style: { left: percent(v, band.start), width: percent(v, band.end - band.start) },
          dataset: { start: band.start, end: band.end },
        }),
        playheadNode(v),
      ]
    );
    v.grid.append(label, track);
  });
}

/** Show the playhead (the `playhead` trait) on every track, or hide it. */
export function renderPlayhead(v) {
  const p = v.model.get("playhead");
  const count = v.n();
  const show = Number.isInteger(p) && p >= 0 && p < count;
  for (const node of v.grid.querySelectorAll(".p2p-timeline__playhead")) {
    node.hidden = !show;
    if (show) {
      node.style.left = `${boundaryToPercent(p + 0.5, count)}%`;
      node.dataset.step = String(p);
    }
  }
}

function renderAdder(v, w) {
  const have = new Set(w.words.map((r) => r[0]));
  const options = (v.model.get("words") || []).filter((word) => !have.has(word));
  const keep = v.wordSelect.value;
  v.wordSelect.replaceChildren(...options.map((word) => v.el("option", { text: word, value: word })));
  if (options.includes(keep)) v.wordSelect.value = keep;
  v.wordSelect.disabled = options.length === 0;
  v.addButton.disabled = options.length === 0;
}

/** Redraw every row from the current windows; a focused handle keeps the focus. */
export function renderGrid(v) {
  const active = v.doc.activeElement;
  const focused = active && v.root.contains(active) ? active : null;
  const refocus =
    focused && focused.classList.contains("p2p-timeline__handle") ? [focused.dataset.row, focused.dataset.edge] : null;
  v.grid.replaceChildren();
  const w = v.current();
  renderAxis(v);
  for (const row of rowsOf(w)) renderRow(v, w, row);
  renderBands(v);
  renderPlayhead(v);
  renderAdder(v, w);
  if (refocus) {
    const handle = v.grid.querySelector(
      `.p2p-timeline__handle[data-row="${cssEscape(refocus[0])}"][data-edge="${refocus[1]}"]`
    );
    if (handle) handle.focus();
  }
}

/** The prompt and every row. */
export function renderAll(v) {
  v.promptText.textContent = v.model.get("target") || "";
  renderGrid(v);
}

/** Move one row's bar and handles to the windows `w` without redrawing (drag preview). */
export function previewRow(v, row, w) {
  const track = v.grid.querySelector(`.p2p-timeline__track[data-row="${cssEscape(rowKey(row))}"]`);
  if (!track) return;
  const [start, end] = windowOf(w, row, v.n());
  const bar = track.querySelector(".p2p-timeline__bar");
  bar.style.left = percent(v, start);
  bar.style.width = percent(v, end - start);
  bar.dataset.start = String(start);
  bar.dataset.end = String(end);
  for (const handle of track.querySelectorAll(".p2p-timeline__handle")) {
    const k = handle.dataset.edge === "start" ? start : end;
    handle.style.left = percent(v, k);
    handle.setAttribute("aria-valuenow", String(k));
    handle.setAttribute("aria-valuetext", describeBoundary(k, v.timesteps()));
  }
}
