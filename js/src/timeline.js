// AlphaTimeline front end: rows of [start, end) windows over the scheduler's real evaluations
// (noisiest on the left), with timestep labels, draggable and keyboard-operable edges that snap
// to steps, per-word rows, presets, and a playhead.
//
// Every change is one `windows` write + save_changes (presets are a message); Python validates.
import "../lib/common.css";
import "./timeline.css";
import { createAnnouncer } from "../lib/a11y.js";
import { mountErrorBanner } from "../lib/error_banner.js";
import {
  addWordRow,
  boundaryToPercent,
  cloneWindows,
  describeBoundary,
  keyToBoundary,
  moveEdge,
  pxToBoundary,
  removeWordRow,
  tickIndices,
  withWindow,
} from "../lib/timeline.js";

const PRESETS = [
  ["default", "P2P default (cross 0.8, self 0.4)"],
  ["source_only", "Source only"],
  ["no_injection", "No injection"],
];

function el(doc, tag, className, text) {
  const node = doc.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

const rowKey = (row) => (typeof row === "string" ? row : `word:${row.word}`);

function rowLabel(row) {
  if (row === "cross") return "cross-attention (default)";
  if (row === "self_attn") return "self-attention";
  if (row === "blend") return "LocalBlend start";
  return `word “${row.word}”`;
}

function render({ model, el: host }) {
  const doc = host.ownerDocument;
  const root = el(doc, "div", "p2p-timeline");
  root.setAttribute("data-lm-suppress-shortcuts", "true");

  const header = el(doc, "div", "p2p-timeline__header");
  header.append(el(doc, "span", "p2p-timeline__title", "Alpha timeline for"));
  const promptText = el(doc, "span", "p2p-timeline__prompt");
  header.append(promptText);

  const presets = el(doc, "div", "p2p-timeline__presets");
  presets.setAttribute("role", "group");
  presets.setAttribute("aria-label", "presets");
  for (const [name, label] of PRESETS) {
    const button = el(doc, "button", "p2p-btn p2p-timeline__preset", label);
    button.type = "button";
    button.dataset.preset = name;
    presets.append(button);
  }

  const grid = el(doc, "div", "p2p-timeline__grid");

  const adder = el(doc, "div", "p2p-timeline__adder");
  const wordSelect = el(doc, "select", "p2p-timeline__word p2p-focusable");
  wordSelect.setAttribute("aria-label", "word of the target prompt");
  const addButton = el(doc, "button", "p2p-btn p2p-timeline__add", "Add word row");
  addButton.type = "button";
  adder.append(el(doc, "span", "", "Override a word:"), wordSelect, addButton);

  const help = el(
    doc,
    "p",
    "p2p-timeline__help",
    "Each bar is the window [start, end) of evaluations in which the edit takes the source's attention; " +
      "time runs left to right from the noisiest step. Drag an edge (it snaps to steps) or focus it and use the " +
      "arrow keys, Page Up/Down, Home and End."
  );

  root.append(header, presets, grid, adder, help);
  host.appendChild(root);
  const announcer = createAnnouncer(root);
  const removeBanner = mountErrorBanner(model, root);

  let drag = null; // {pointerId, row, edge, track, draft}
  let draft = null; // windows being dragged (preview), or null

  const n = () => model.get("n_evals") || 0;
  const timesteps = () => model.get("timesteps") || [];
  const windows = () => {
    const w = model.get("windows") || {};
    return cloneWindows({
      cross: w.cross || [0, 0],
      self_attn: w.self_attn || [0, 0],
      words: w.words || [],
      blend_start: Number.isInteger(w.blend_start) ? w.blend_start : 0,
    });
  };
  const current = () => draft || windows();

  function windowOf(w, row) {
    if (row === "cross" || row === "self_attn") return w[row];
    if (row === "blend") return [w.blend_start, n()];
    const found = w.words.find((r) => r[0] === row.word);
    return found ? [found[1], found[2]] : null;
  }

  function rowsOf(w) {
    return ["cross", ...w.words.map((r) => ({ word: r[0] })), "self_attn", "blend"];
  }

  function withEdge(w, row, edge, k) {
    if (row === "blend") return { ...cloneWindows(w), blend_start: Math.max(0, Math.min(n(), k)) };
    const win = windowOf(w, row);
    return withWindow(w, row, moveEdge(win, edge, k, n()));
  }

  const commit = (next) => {
    model.set("windows", next);
    model.save_changes();
  };

  // -- rendering -------------------------------------------------------------------------------
  function renderAxis() {
    const axisLabel = el(doc, "div", "p2p-timeline__label p2p-timeline__label--axis", "timestep");
    const axis = el(doc, "div", "p2p-timeline__track p2p-timeline__axis");
    axis.setAttribute("aria-hidden", "true");
    const count = n();
    const ts = timesteps();
    for (const i of tickIndices(count, 10)) {
      const tick = el(doc, "span", "p2p-timeline__tick", String(ts[i]));
      tick.dataset.index = String(i);
      tick.style.left = `${boundaryToPercent(i + 0.5, count)}%`;
      tick.title = `evaluation ${i}, t = ${ts[i]}`;
      axis.append(tick);
    }
    axis.append(playheadNode());
    grid.append(axisLabel, axis);
  }

  function playheadNode() {
    const node = el(doc, "div", "p2p-timeline__playhead");
    return node;
  }

  function handleNode(row, edge, k, range) {
    const handle = el(doc, "div", "p2p-timeline__handle p2p-focusable");
    handle.dataset.row = rowKey(row);
    handle.dataset.edge = edge;
    handle.tabIndex = 0;
    handle.setAttribute("role", "slider");
    handle.setAttribute("aria-orientation", "horizontal");
    const what = row === "blend" ? "LocalBlend start" : `${rowLabel(row)} ${edge}`;
    handle.setAttribute("aria-label", what);
    handle.setAttribute("aria-valuemin", String(range[0]));
    handle.setAttribute("aria-valuemax", String(range[1]));
    handle.setAttribute("aria-valuenow", String(k));
    handle.setAttribute("aria-valuetext", describeBoundary(k, timesteps()));
    handle.style.left = `${boundaryToPercent(k, n())}%`;
    return handle;
  }

  function renderRow(w, row) {
    const key = rowKey(row);
    const label = el(doc, "div", "p2p-timeline__label");
    label.dataset.row = key;
    label.append(el(doc, "span", "p2p-timeline__labeltext", rowLabel(row)));
    if (typeof row !== "string") {
      const rm = el(doc, "button", "p2p-btn p2p-timeline__remove", "×");
      rm.type = "button";
      rm.dataset.word = row.word;
      rm.setAttribute("aria-label", `remove the row of ${row.word}`);
      label.append(rm);
    }
    const track = el(doc, "div", `p2p-timeline__track p2p-timeline__track--${typeof row === "string" ? row : "word"}`);
    track.dataset.row = key;
    track.style.setProperty("--p2p-n", String(Math.max(1, n())));
    const [start, end] = windowOf(w, row);
    const bar = el(doc, "div", "p2p-timeline__bar");
    bar.style.left = `${boundaryToPercent(start, n())}%`;
    bar.style.width = `${boundaryToPercent(end - start, n())}%`;
    bar.dataset.start = String(start);
    bar.dataset.end = String(end);
    bar.title = `${rowLabel(row)}: evaluations [${start}, ${end})`;
    track.append(bar);
    if (row === "blend") {
      track.append(handleNode(row, "start", start, [0, n()]));
    } else {
      track.append(handleNode(row, "start", start, [0, end]), handleNode(row, "end", end, [start, n()]));
    }
    track.append(playheadNode());
    grid.append(label, track);
  }

  function renderPlayhead() {
    const p = model.get("playhead");
    const count = n();
    const show = Number.isInteger(p) && p >= 0 && p < count;
    for (const node of grid.querySelectorAll(".p2p-timeline__playhead")) {
      node.hidden = !show;
      if (show) {
        node.style.left = `${boundaryToPercent(p + 0.5, count)}%`;
        node.dataset.step = String(p);
      }
    }
  }

  function renderAdder(w) {
    const have = new Set(w.words.map((r) => r[0]));
    const options = (model.get("words") || []).filter((word) => !have.has(word));
    const keep = wordSelect.value;
    wordSelect.replaceChildren();
    for (const word of options) {
      const option = el(doc, "option", "", word);
      option.value = word;
      wordSelect.append(option);
    }
    if (options.includes(keep)) wordSelect.value = keep;
    wordSelect.disabled = options.length === 0;
    addButton.disabled = options.length === 0;
  }

  function renderGrid() {
    const focused = doc.activeElement && root.contains(doc.activeElement) ? doc.activeElement : null;
    const refocus = focused && focused.classList.contains("p2p-timeline__handle")
      ? [focused.dataset.row, focused.dataset.edge]
      : null;
    grid.replaceChildren();
    const w = current();
    renderAxis();
    for (const row of rowsOf(w)) renderRow(w, row);
    renderPlayhead();
    renderAdder(w);
    if (refocus) {
      const handle = grid.querySelector(
        `.p2p-timeline__handle[data-row="${cssEscape(refocus[0])}"][data-edge="${refocus[1]}"]`
      );
      if (handle) handle.focus();
    }
  }

  function renderAll() {
    promptText.textContent = model.get("target") || "";
    renderGrid();
  }

  // -- interaction -----------------------------------------------------------------------------
  function rowFromKey(key) {
    if (key === "cross" || key === "self_attn" || key === "blend") return key;
    return { word: key.slice("word:".length) };
  }

  function announceEdge(row, edge, w) {
    const [start, end] = windowOf(w, row);
    const k = edge === "start" ? start : end;
    const ts = timesteps();
    if (row === "blend") announcer.announce(`LocalBlend starts at ${describeBoundary(k, ts)}`);
    else announcer.announce(`${rowLabel(row)} ${edge === "start" ? "starts" : "ends"} at ${describeBoundary(k, ts)}`);
  }

  const onKeyDown = (ev) => {
    const target = ev.target;
    if (!(target instanceof Element) || !target.classList.contains("p2p-timeline__handle")) return;
    const row = rowFromKey(target.dataset.row);
    const edge = target.dataset.edge;
    const w = windows();
    const win = windowOf(w, row);
    if (!win) return;
    const k = edge === "start" ? win[0] : win[1];
    const next = keyToBoundary(ev.key, k, n());
    if (next === null) return;
    ev.preventDefault();
    ev.stopPropagation();
    const updated = withEdge(w, row, edge, next);
    const after = windowOf(updated, row);
    if (after[0] === win[0] && after[1] === win[1]) return;
    commit(updated);
    announceEdge(row, edge, updated);
  };

  const onPointerDown = (ev) => {
    const target = ev.target;
    if (!(target instanceof Element) || drag) return;
    const handle = target.closest(".p2p-timeline__handle");
    if (!handle || (ev.button !== undefined && ev.button !== 0)) return;
    ev.stopPropagation();
    ev.preventDefault();
    handle.focus();
    drag = {
      pointerId: ev.pointerId,
      key: handle.dataset.row,
      row: rowFromKey(handle.dataset.row),
      edge: handle.dataset.edge,
      track: handle.closest(".p2p-timeline__track"),
      handle,
    };
    handle.classList.add("p2p-timeline__handle--dragging");
    try {
      handle.setPointerCapture(ev.pointerId);
    } catch (_) {
      /* synthetic events: bubbling still works */
    }
  };

  const onPointerMove = (ev) => {
    if (!drag || ev.pointerId !== drag.pointerId) return;
    ev.preventDefault();
    // handles sit at k/n of the padding box: measure the same box (border excluded)
    const rect = drag.track.getBoundingClientRect();
    const width = drag.track.clientWidth || rect.width;
    const k = pxToBoundary(ev.clientX - rect.left - (drag.track.clientLeft || 0), width, n());
    const next = withEdge(current(), drag.row, drag.edge, k);
    const before = windowOf(current(), drag.row);
    const after = windowOf(next, drag.row);
    if (before[0] === after[0] && before[1] === after[1]) return;
    draft = next;
    previewRow(drag.row, next);
  };

  function previewRow(row, w) {
    const track = grid.querySelector(`.p2p-timeline__track[data-row="${cssEscape(rowKey(row))}"]`);
    if (!track) return;
    const [start, end] = windowOf(w, row);
    const bar = track.querySelector(".p2p-timeline__bar");
    bar.style.left = `${boundaryToPercent(start, n())}%`;
    bar.style.width = `${boundaryToPercent(end - start, n())}%`;
    bar.dataset.start = String(start);
    bar.dataset.end = String(end);
    for (const handle of track.querySelectorAll(".p2p-timeline__handle")) {
      const k = handle.dataset.edge === "start" ? start : end;
      handle.style.left = `${boundaryToPercent(k, n())}%`;
      handle.setAttribute("aria-valuenow", String(k));
      handle.setAttribute("aria-valuetext", describeBoundary(k, timesteps()));
    }
  }

  function endDrag() {
    if (!drag) return;
    drag.handle.classList.remove("p2p-timeline__handle--dragging");
    try {
      if (drag.handle.hasPointerCapture && drag.handle.hasPointerCapture(drag.pointerId)) {
        drag.handle.releasePointerCapture(drag.pointerId);
      }
    } catch (_) {
      /* already released */
    }
    drag = null;
  }

  const onPointerUp = (ev) => {
    if (!drag || ev.pointerId !== drag.pointerId) return;
    const { row, edge } = drag;
    const next = draft;
    endDrag();
    draft = null;
    if (next) {
      commit(next); // change:windows re-renders from the model
      announceEdge(row, edge, next);
    }
  };

  const onPointerCancel = (ev) => {
    if (!drag || ev.pointerId !== drag.pointerId) return;
    endDrag();
    draft = null;
    renderGrid();
    announcer.announce("drag cancelled");
  };

  const onClick = (ev) => {
    const target = ev.target;
    if (!(target instanceof Element)) return;
    const preset = target.closest(".p2p-timeline__preset");
    if (preset) {
      model.send({ type: "preset", name: preset.dataset.preset });
      announcer.announce(`preset ${preset.textContent} requested`);
      return;
    }
    const rm = target.closest(".p2p-timeline__remove");
    if (rm) {
      commit(removeWordRow(windows(), rm.dataset.word));
      announcer.announce(`removed the row of ${rm.dataset.word}`);
      return;
    }
    if (target.closest(".p2p-timeline__add") && wordSelect.value) {
      const word = wordSelect.value;
      commit(addWordRow(windows(), word));
      announcer.announce(`added a row for ${word}`);
    }
  };

  root.addEventListener("keydown", onKeyDown);
  root.addEventListener("pointerdown", onPointerDown);
  root.addEventListener("pointermove", onPointerMove);
  root.addEventListener("pointerup", onPointerUp);
  root.addEventListener("pointercancel", onPointerCancel);
  root.addEventListener("click", onClick);

  const onWindows = () => {
    if (!drag) renderGrid();
  };
  const modelEvents = [
    ["change:windows", onWindows],
    ["change:timesteps", renderGrid],
    ["change:n_evals", renderGrid],
    ["change:words", renderGrid],
    ["change:playhead", renderPlayhead],
    ["change:target", renderAll],
  ];
  for (const [event, cb] of modelEvents) model.on(event, cb);

  renderAll();

  return () => {
    for (const [event, cb] of modelEvents) model.off(event, cb);
    endDrag();
    root.removeEventListener("keydown", onKeyDown);
    root.removeEventListener("pointerdown", onPointerDown);
    root.removeEventListener("pointermove", onPointerMove);
    root.removeEventListener("pointerup", onPointerUp);
    root.removeEventListener("pointercancel", onPointerCancel);
    root.removeEventListener("click", onClick);
    removeBanner();
    root.remove();
  };
}

// attribute selectors with word text inside: escape quotes and backslashes
function cssEscape(value) {
  return String(value).replace(/["\\]/g, "\\$&");
}

export default { render };
