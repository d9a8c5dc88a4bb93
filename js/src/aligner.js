// TokenAligner front end: source and target token chips, links drawn between the rows, a links
// list with editable weights, and a live heat map of M (the used rows and columns).
//
// Ways to link source token i to target token j (all end in one `links` write + save_changes):
// - pointer drag: press on a chip, drag onto a chip of the other row, release;
// - single pointer: click a chip (it is "picked"), then click a chip of the other row;
// - keyboard: Tab to a row, arrows to a chip, Enter/Space picks, Down/Up changes row, Enter/Space
//   places; Escape cancels; Delete removes the focused chip's links.
// Python validates every write; the view only renders model state (text via textContent).
import "../lib/common.css";
import "./aligner.css";
import { createAnnouncer } from "../lib/a11y.js";
import {
  addLink,
  chipLabel,
  formatWeight,
  groupWords,
  heatColor,
  matrixFromLinks,
  parseWeight,
  removeLink,
  removeLinksOf,
  setWeight,
  sortLinks,
  visibleTokens,
} from "../lib/alignment.js";
import { mountErrorBanner } from "../lib/error_banner.js";

const SVG_NS = "http://www.w3.org/2000/svg";
const DRAG_THRESHOLD_PX = 4;
const SIDES = ["source", "target"];
let instances = 0;

function el(doc, tag, className, text) {
  const node = doc.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function svgEl(doc, tag, attrs = {}) {
  const node = doc.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  return node;
}

function render({ model, el: host }) {
  const doc = host.ownerDocument;
  const uid = `p2p-aligner-${++instances}`;
  const root = el(doc, "div", "p2p-aligner");
  root.setAttribute("data-lm-suppress-shortcuts", "true");

  // -- toolbar ----------------------------------------------------------------------------------
  const toolbar = el(doc, "div", "p2p-aligner__toolbar");
  const inputs = {};
  for (const side of SIDES) {
    const label = el(doc, "label", "p2p-aligner__field");
    label.append(el(doc, "span", "p2p-aligner__fieldname", side));
    const input = el(doc, "input", "p2p-aligner__input p2p-focusable");
    input.type = "text";
    input.dataset.side = side;
    input.spellcheck = false;
    label.append(input);
    toolbar.append(label);
    inputs[side] = input;
  }
  const kindSelect = el(doc, "select", "p2p-aligner__kind p2p-focusable");
  kindSelect.setAttribute("aria-label", "auto-align method");
  for (const kind of ["auto", "replace", "refine"]) {
    const option = el(doc, "option", "", kind);
    option.value = kind;
    kindSelect.append(option);
  }
  const autoButton = el(doc, "button", "p2p-btn p2p-aligner__auto", "Auto-align");
  autoButton.type = "button";
  const specialLabel = el(doc, "label", "p2p-aligner__special");
  const specialBox = el(doc, "input", "p2p-focusable");
  specialBox.type = "checkbox";
  specialLabel.append(specialBox, el(doc, "span", "", "show BOS/EOS"));
  toolbar.append(kindSelect, autoButton, specialLabel);

  const help = el(
    doc,
    "p",
    "p2p-aligner__help",
    "Drag a source token onto a target token, or pick a token (click, Enter or Space) and then place it on " +
      "the other row. Arrows move between tokens, Down/Up between rows, Escape cancels, Delete removes a " +
      "token's links. Click a link to remove it. Target tokens without a link are new: they keep their own attention."
  );
  help.id = `${uid}-help`;

  // -- stage: two rows of chips and the links between them --------------------------------------
  const stage = el(doc, "div", "p2p-aligner__stage");
  const rows = {};
  const chipBoxes = {};
  for (const side of SIDES) {
    const row = el(doc, "div", "p2p-aligner__row");
    row.dataset.side = side;
    row.setAttribute("role", "group");
    row.setAttribute("aria-label", `${side} tokens`);
    row.append(el(doc, "span", "p2p-aligner__rowlabel", side));
    const chips = el(doc, "div", "p2p-aligner__chips");
    row.append(chips);
    rows[side] = row;
    chipBoxes[side] = chips;
  }
  const svg = svgEl(doc, "svg", { class: "p2p-aligner__links", "aria-hidden": "true" });
  const linkLayer = svgEl(doc, "g");
  const ghost = svgEl(doc, "line", { class: "p2p-aligner__ghost", visibility: "hidden" });
  svg.append(linkLayer, ghost);
  stage.append(rows.source, svg, rows.target);

  // -- links list and heat map -----------------------------------------------------------------
  const listBox = el(doc, "div", "p2p-aligner__listbox");
  const list = el(doc, "table", "p2p-aligner__list");
  const listCaption = el(doc, "caption", "", "Links (source → target, weight)");
  const listBody = el(doc, "tbody");
  list.append(listCaption, listBody);
  const listEmpty = el(doc, "p", "p2p-aligner__empty", "No links: every target token keeps its own attention.");
  listBox.append(list, listEmpty);

  const heatBox = el(doc, "div", "p2p-aligner__heatbox");
  const heat = el(doc, "table", "p2p-aligner__heat");
  heatBox.append(heat);

  const panels = el(doc, "div", "p2p-aligner__panels");
  panels.append(listBox, heatBox);

  root.append(toolbar, help, stage, panels);
  host.appendChild(root);
  const announcer = createAnnouncer(root);
  const removeBanner = mountErrorBanner(model, root);

  // -- view state ------------------------------------------------------------------------------
  let picked = null; // {side, pos}
  let drag = null; // {pointerId, side, pos, x0, y0, dragging, chip, over}
  let suppressClick = false;
  const active = { source: null, target: null }; // roving tabindex position per row

  const tokens = (side) => model.get(`${side}_tokens`) || [];
  const links = () => sortLinks(model.get("links") || []);
  const showSpecial = () => !!model.get("show_special");
  const tokenAt = (side, pos) => tokens(side).find((t) => t.pos === pos);
  const nameOf = (side, pos) => {
    const t = tokenAt(side, pos);
    return t ? `"${chipLabel(t)}"` : `token ${pos}`;
  };
  const chipOf = (side, pos) => chipBoxes[side].querySelector(`.p2p-aligner__chip[data-pos="${pos}"]`);
  const visibleChips = (side) => Array.from(chipBoxes[side].querySelectorAll(".p2p-aligner__chip"));
  const other = (side) => (side === "source" ? "target" : "source");

  const commit = (next) => {
    model.set("links", next);
    model.save_changes();
  };

  const link = (side, pos, otherPos) => {
    const [i, j] = side === "source" ? [pos, otherPos] : [otherPos, pos];
    const result = addLink(links(), i, j);
    if (!result.added) {
      announcer.announce(`${nameOf("source", i)} is already linked to ${nameOf("target", j)}`);
      return;
    }
    commit(result.links);
    const w = result.links.find((l) => l[0] === i && l[1] === j)[2];
    announcer.announce(`linked ${nameOf("source", i)} to ${nameOf("target", j)}, weight ${formatWeight(w)}`);
  };

  const unlink = (i, j) => {
    const result = removeLink(links(), i, j);
    if (!result.removed) return;
    commit(result.links);
    announcer.announce(`removed the link ${nameOf("source", i)} to ${nameOf("target", j)}`);
  };

  // -- rendering -------------------------------------------------------------------------------
  function renderChips() {
    const focused = doc.activeElement && root.contains(doc.activeElement) ? doc.activeElement : null;
    const refocus = focused && focused.classList.contains("p2p-aligner__chip")
      ? { side: focused.dataset.side, pos: Number(focused.dataset.pos) }
      : null;
    for (const side of SIDES) {
      const box = chipBoxes[side];
      box.replaceChildren();
      const shown = visibleTokens(tokens(side), showSpecial());
      if (!shown.some((t) => t.pos === active[side])) active[side] = shown.length ? shown[0].pos : null;
      for (const group of groupWords(shown)) {
        const wrap = el(doc, "span", "p2p-aligner__word");
        if (group.tokens.length > 1) {
          wrap.classList.add("p2p-aligner__word--multi");
          wrap.setAttribute("role", "group");
          wrap.setAttribute("aria-label", `word ${group.text}`);
          wrap.title = group.text;
        }
        for (const t of group.tokens) {
          const chip = el(doc, "button", "p2p-aligner__chip p2p-focusable", chipLabel(t));
          chip.type = "button";
          chip.dataset.side = side;
          chip.dataset.pos = String(t.pos);
          if (t.special) {
            chip.classList.add("p2p-aligner__chip--special");
            chip.title = t.text;
          }
          chip.tabIndex = t.pos === active[side] ? 0 : -1;
          chip.setAttribute("aria-describedby", help.id);
          wrap.append(chip);
        }
        if (group.tokens.length > 1) wrap.append(el(doc, "span", "p2p-aligner__wordlabel", group.text));
        box.append(wrap);
      }
      if (!shown.length) box.append(el(doc, "span", "p2p-aligner__none", "(no tokens)"));
    }
    if (picked && !chipOf(picked.side, picked.pos)) picked = null;
    if (refocus) {
      const chip = chipOf(refocus.side, refocus.pos);
      if (chip) chip.focus();
    }
  }

  function renderLinkState() {
    const current = links();
    const fedBy = new Map();
    for (const [i, j, w] of current) {
      if (!fedBy.has(j)) fedBy.set(j, []);
      fedBy.get(j).push([i, w]);
    }
    const usedSources = new Set(current.map((l) => l[0]));
    for (const side of SIDES) {
      for (const chip of visibleChips(side)) {
        const pos = Number(chip.dataset.pos);
        const t = tokenAt(side, pos);
        const isPicked = !!picked && picked.side === side && picked.pos === pos;
        chip.setAttribute("aria-pressed", String(isPicked));
        chip.classList.toggle("p2p-aligner__chip--picked", isPicked);
        let state;
        if (side === "source") {
          const linked = usedSources.has(pos);
          chip.classList.toggle("p2p-aligner__chip--linked", linked);
          state = linked ? "linked" : "not linked";
        } else {
          const from = fedBy.get(pos) || [];
          const isNew = from.length === 0 && !(t && t.special);
          chip.classList.toggle("p2p-aligner__chip--linked", from.length > 0);
          chip.classList.toggle("p2p-aligner__chip--new", isNew);
          state = from.length
            ? `fed by ${from.map(([i, w]) => `${nameOf("source", i)} ${formatWeight(w)}`).join(", ")}`
            : isNew ? "new token, keeps its own attention" : "fed automatically";
          if (!t || !t.special) chip.title = isNew ? "new token: keeps its own attention" : "";
        }
        chip.setAttribute("aria-label", `${side} token ${t ? chipLabel(t) : pos}, position ${pos}, ${state}`);
      }
    }
  }

  function renderList() {
    listBody.replaceChildren();
    const shown = links().filter(([i, j]) => chipVisible("source", i) && chipVisible("target", j));
    for (const [i, j, w] of shown) {
      const tr = el(doc, "tr", "p2p-aligner__item");
      tr.dataset.i = String(i);
      tr.dataset.j = String(j);
      const src = el(doc, "td", "p2p-aligner__item-src", `${chipLabel(tokenAt("source", i) || { text: String(i) })}`);
      const arrow = el(doc, "td", "p2p-aligner__arrow", "→");
      const tgt = el(doc, "td", "p2p-aligner__item-tgt", `${chipLabel(tokenAt("target", j) || { text: String(j) })}`);
      const wCell = el(doc, "td");
      const input = el(doc, "input", "p2p-aligner__weight p2p-focusable");
      input.type = "number";
      input.step = "0.05";
      input.min = "-10";
      input.max = "10";
      input.value = String(Math.round(w * 1e4) / 1e4);
      input.dataset.i = String(i);
      input.dataset.j = String(j);
      input.setAttribute("aria-label", `weight of ${nameOf("source", i)} to ${nameOf("target", j)}`);
      wCell.append(input);
      const rmCell = el(doc, "td");
      const rm = el(doc, "button", "p2p-btn p2p-aligner__remove", "×");
      rm.type = "button";
      rm.dataset.i = String(i);
      rm.dataset.j = String(j);
      rm.setAttribute("aria-label", `remove the link ${nameOf("source", i)} to ${nameOf("target", j)}`);
      rmCell.append(rm);
      tr.append(src, arrow, tgt, wCell, rmCell);
      listBody.append(tr);
    }
    list.hidden = shown.length === 0;
    listEmpty.hidden = shown.length !== 0;
  }

  function chipVisible(side, pos) {
    const t = tokenAt(side, pos);
    return !!t && (showSpecial() || !t.special);
  }

  function renderHeat() {
    heat.replaceChildren();
    const src = tokens("source");
    const tgt = tokens("target");
    const m = matrixFromLinks(links(), src.length, tgt.length);
    const rowsShown = visibleTokens(src, showSpecial());
    const colsShown = visibleTokens(tgt, showSpecial());
    let max = 0;
    for (const row of m) for (const v of row) max = Math.max(max, Math.abs(v));
    heat.append(el(doc, "caption", "", "M: source tokens (rows) feed target tokens (columns)"));
    const head = el(doc, "tr");
    head.append(el(doc, "th", "p2p-aligner__corner"));
    for (const t of colsShown) {
      const th = el(doc, "th", "p2p-aligner__colhead", chipLabel(t));
      th.scope = "col";
      head.append(th);
    }
    const thead = el(doc, "thead");
    thead.append(head);
    const tbody = el(doc, "tbody");
    for (const s of rowsShown) {
      const tr = el(doc, "tr");
      const th = el(doc, "th", "p2p-aligner__rowhead", chipLabel(s));
      th.scope = "row";
      tr.append(th);
      for (const t of colsShown) {
        const w = m[s.pos] ? m[s.pos][t.pos] || 0 : 0;
        const td = el(doc, "td", "p2p-aligner__cell", w ? formatWeight(w) : "");
        td.dataset.i = String(s.pos);
        td.dataset.j = String(t.pos);
        td.dataset.w = String(w);
        td.style.backgroundColor = heatColor(w, Math.max(1, max));
        if (Math.abs(w) > 0.55 * Math.max(1, max)) td.classList.add("p2p-aligner__cell--strong");
        td.title = `${chipLabel(s)} → ${chipLabel(t)}: ${formatWeight(w)}`;
        tr.append(td);
      }
      tbody.append(tr);
    }
    heat.append(thead, tbody);
  }

  function center(rect, base, edge) {
    return [rect.left + rect.width / 2 - base.left, (edge === "bottom" ? rect.bottom : rect.top) - base.top];
  }

  function layoutLinks() {
    linkLayer.replaceChildren();
    const base = stage.getBoundingClientRect();
    svg.setAttribute("width", String(Math.max(0, base.width)));
    svg.setAttribute("height", String(Math.max(0, base.height)));
    for (const [i, j, w] of links()) {
      const a = chipOf("source", i);
      const b = chipOf("target", j);
      if (!a || !b) continue;
      const [x1, y1] = center(a.getBoundingClientRect(), base, "bottom");
      const [x2, y2] = center(b.getBoundingClientRect(), base, "top");
      const coords = { x1, y1, x2, y2 };
      const line = svgEl(doc, "line", {
        ...coords,
        class: `p2p-aligner__link${w < 0 ? " p2p-aligner__link--negative" : ""}`,
        "stroke-width": (1.5 + 2.5 * Math.min(1, Math.abs(w))).toFixed(2),
        "data-i": i,
        "data-j": j,
      });
      const hit = svgEl(doc, "line", { ...coords, class: "p2p-aligner__hit", "data-i": i, "data-j": j });
      const title = svgEl(doc, "title");
      title.textContent = `${nameOf("source", i)} → ${nameOf("target", j)}, weight ${formatWeight(w)}: click to remove`;
      hit.append(title);
      linkLayer.append(line, hit);
    }
  }

  function renderAll() {
    inputs.source.value = model.get("source") || "";
    inputs.target.value = model.get("target") || "";
    kindSelect.value = model.get("kind") || "auto";
    specialBox.checked = showSpecial();
    renderChips();
    renderLinks();
  }

  function renderLinks() {
    renderLinkState();
    renderList();
    renderHeat();
    layoutLinks();
  }

  // -- picking and placing ---------------------------------------------------------------------
  function activate(side, pos) {
    if (picked && picked.side !== side) {
      const from = picked;
      picked = null;
      link(from.side, from.pos, pos);
      renderLinkState();
      return;
    }
    if (picked && picked.side === side && picked.pos === pos) {
      picked = null;
      announcer.announce("pick cancelled");
    } else {
      picked = { side, pos };
      announcer.announce(
        `picked ${side} token ${nameOf(side, pos)}; now choose a ${other(side)} token and press Enter, or Escape to cancel`
      );
    }
    renderLinkState();
  }

  function focusChip(side, pos) {
    const chip = chipOf(side, pos);
    if (!chip) return;
    for (const c of visibleChips(side)) c.tabIndex = -1;
    chip.tabIndex = 0;
    active[side] = pos;
    chip.focus();
  }

  // -- events ----------------------------------------------------------------------------------
  const onClick = (ev) => {
    const target = ev.target;
    if (!(target instanceof Element)) return;
    const chip = target.closest(".p2p-aligner__chip");
    if (chip && root.contains(chip)) {
      if (suppressClick) return;
      activate(chip.dataset.side, Number(chip.dataset.pos));
      return;
    }
    const hit = target.closest(".p2p-aligner__hit");
    if (hit) {
      unlink(Number(hit.getAttribute("data-i")), Number(hit.getAttribute("data-j")));
      return;
    }
    const rm = target.closest(".p2p-aligner__remove");
    if (rm) unlink(Number(rm.dataset.i), Number(rm.dataset.j));
  };

  const onKeyDown = (ev) => {
    const target = ev.target;
    if (!(target instanceof Element)) return;
    const chip = target.closest(".p2p-aligner__chip");
    if (ev.key === "Escape" && (picked || drag)) {
      picked = null;
      cancelDrag();
      announcer.announce("cancelled");
      renderLinkState();
      ev.preventDefault();
      ev.stopPropagation();
      return;
    }
    if (!chip) return;
    const side = chip.dataset.side;
    const pos = Number(chip.dataset.pos);
    const chips = visibleChips(side);
    const index = chips.indexOf(chip);
    let handled = true;
    if (ev.key === "Enter" || ev.key === " ") {
      // handled here (not through the button's native click) so that every environment behaves
      // the same; preventDefault stops the native click that would toggle the pick back
      if (!ev.repeat) activate(side, pos);
    } else if (ev.key === "ArrowRight" && index < chips.length - 1) focusChip(side, Number(chips[index + 1].dataset.pos));
    else if (ev.key === "ArrowLeft" && index > 0) focusChip(side, Number(chips[index - 1].dataset.pos));
    else if (ev.key === "Home" && chips.length) focusChip(side, Number(chips[0].dataset.pos));
    else if (ev.key === "End" && chips.length) focusChip(side, Number(chips[chips.length - 1].dataset.pos));
    else if ((ev.key === "ArrowDown" && side === "source") || (ev.key === "ArrowUp" && side === "target")) {
      const to = other(side);
      const candidates = visibleChips(to);
      if (candidates.length) {
        const keep = candidates.find((c) => Number(c.dataset.pos) === active[to]) || candidates[0];
        focusChip(to, Number(keep.dataset.pos));
      }
    } else if (ev.key === "Delete" || ev.key === "Backspace") {
      const result = removeLinksOf(links(), side, pos);
      if (result.removed) {
        commit(result.links);
        announcer.announce(`removed ${result.removed} link${result.removed > 1 ? "s" : ""} of ${nameOf(side, pos)}`);
      }
    } else if (ev.key.startsWith("Arrow")) {
      // at the end of a row: swallow so that the notebook does not move between cells
    } else handled = false;
    if (handled) {
      ev.preventDefault();
      ev.stopPropagation();
    }
  };

  const onKeyUp = (ev) => {
    // Space activates a button on keyup: already handled on keydown
    if (ev.key === " " && ev.target instanceof Element && ev.target.closest(".p2p-aligner__chip")) {
      ev.preventDefault();
      ev.stopPropagation();
    }
  };

  function dropChipAt(ev) {
    let hitEl = null;
    if (typeof doc.elementFromPoint === "function" && Number.isFinite(ev.clientX)) {
      hitEl = doc.elementFromPoint(ev.clientX, ev.clientY);
    }
    if (!hitEl || !root.contains(hitEl)) hitEl = ev.target;
    if (!(hitEl instanceof Element)) return null;
    const chip = hitEl.closest(".p2p-aligner__chip");
    return chip && root.contains(chip) ? chip : null;
  }

  function cancelDrag() {
    if (!drag) return;
    if (drag.over) drag.over.classList.remove("p2p-aligner__chip--drop");
    drag.chip.classList.remove("p2p-aligner__chip--dragging");
    ghost.setAttribute("visibility", "hidden");
    try {
      if (drag.chip.hasPointerCapture && drag.chip.hasPointerCapture(drag.pointerId)) {
        drag.chip.releasePointerCapture(drag.pointerId);
      }
    } catch (_) {
      /* capture already gone */
    }
    drag = null;
  }

  const onPointerDown = (ev) => {
    const target = ev.target;
    if (!(target instanceof Element)) return;
    const chip = target.closest(".p2p-aligner__chip");
    if (!chip || (ev.button !== undefined && ev.button !== 0) || drag) return;
    ev.stopPropagation(); // keep the notebook's own drag/selection handlers out of it
    drag = {
      pointerId: ev.pointerId,
      side: chip.dataset.side,
      pos: Number(chip.dataset.pos),
      x0: ev.clientX,
      y0: ev.clientY,
      dragging: false,
      chip,
      over: null,
    };
    try {
      chip.setPointerCapture(ev.pointerId);
    } catch (_) {
      /* not supported (e.g. synthetic events): plain bubbling still works */
    }
  };

  const onPointerMove = (ev) => {
    if (!drag || ev.pointerId !== drag.pointerId) return;
    if (!drag.dragging) {
      if (Math.hypot(ev.clientX - drag.x0, ev.clientY - drag.y0) < DRAG_THRESHOLD_PX) return;
      drag.dragging = true;
      drag.chip.classList.add("p2p-aligner__chip--dragging");
      announcer.announce(`dragging ${drag.side} token ${nameOf(drag.side, drag.pos)}`);
    }
    ev.preventDefault();
    const base = stage.getBoundingClientRect();
    const [x1, y1] = center(drag.chip.getBoundingClientRect(), base, drag.side === "source" ? "bottom" : "top");
    ghost.setAttribute("x1", String(x1));
    ghost.setAttribute("y1", String(y1));
    ghost.setAttribute("x2", String(ev.clientX - base.left));
    ghost.setAttribute("y2", String(ev.clientY - base.top));
    ghost.setAttribute("visibility", "visible");
    const over = dropChipAt(ev);
    const valid = over && over.dataset.side !== drag.side ? over : null;
    if (valid !== drag.over) {
      if (drag.over) drag.over.classList.remove("p2p-aligner__chip--drop");
      if (valid) valid.classList.add("p2p-aligner__chip--drop");
      drag.over = valid;
    }
  };

  const onPointerUp = (ev) => {
    if (!drag || ev.pointerId !== drag.pointerId) return;
    const state = drag;
    const over = state.dragging ? dropChipAt(ev) : null;
    cancelDrag();
    if (!state.dragging) return; // a click: the click handler picks the chip
    suppressClick = true;
    setTimeout(() => {
      suppressClick = false;
    }, 0);
    if (over && over.dataset.side !== state.side) {
      picked = null;
      link(state.side, state.pos, Number(over.dataset.pos));
    } else {
      announcer.announce("dropped outside the other row: nothing linked");
    }
    renderLinkState();
  };

  const onPointerCancel = (ev) => {
    if (drag && ev.pointerId === drag.pointerId) {
      cancelDrag();
      announcer.announce("drag cancelled");
    }
  };

  const onTextChange = (ev) => {
    const side = ev.target.dataset.side;
    model.set(side, ev.target.value);
    model.save_changes();
  };
  const onWeightChange = (ev) => {
    const input = ev.target;
    if (!(input instanceof Element) || !input.classList.contains("p2p-aligner__weight")) return;
    const i = Number(input.dataset.i);
    const j = Number(input.dataset.j);
    // an unparsable weight is sent as NaN (null in JSON): Python rejects it and shows why
    const w = parseWeight(input.value);
    commit(setWeight(links(), i, j, w === null ? Number.NaN : w));
  };
  const onKind = () => {
    model.set("kind", kindSelect.value);
    model.save_changes();
  };
  const onAuto = () => {
    picked = null;
    model.send({ type: "auto_align", kind: kindSelect.value });
    announcer.announce(`auto-align (${kindSelect.value}) requested`);
  };
  const onSpecial = () => {
    model.set("show_special", specialBox.checked);
    model.save_changes();
  };

  root.addEventListener("click", onClick);
  root.addEventListener("keydown", onKeyDown);
  root.addEventListener("keyup", onKeyUp);
  root.addEventListener("pointerdown", onPointerDown);
  root.addEventListener("pointermove", onPointerMove);
  root.addEventListener("pointerup", onPointerUp);
  root.addEventListener("pointercancel", onPointerCancel);
  root.addEventListener("change", onWeightChange);
  inputs.source.addEventListener("change", onTextChange);
  inputs.target.addEventListener("change", onTextChange);
  kindSelect.addEventListener("change", onKind);
  autoButton.addEventListener("click", onAuto);
  specialBox.addEventListener("change", onSpecial);

  const onTokens = () => {
    renderChips();
    renderLinks();
  };
  const onText = () => {
    inputs.source.value = model.get("source") || "";
    inputs.target.value = model.get("target") || "";
  };
  const onKindChange = () => {
    kindSelect.value = model.get("kind") || "auto";
  };
  const onSpecialChange = () => {
    specialBox.checked = showSpecial();
    onTokens();
  };
  const modelEvents = [
    ["change:source_tokens", onTokens],
    ["change:target_tokens", onTokens],
    ["change:show_special", onSpecialChange],
    ["change:links", renderLinks],
    ["change:source", onText],
    ["change:target", onText],
    ["change:kind", onKindChange],
  ];
  for (const [event, cb] of modelEvents) model.on(event, cb);

  let pending = false;
  let disposed = false;
  const relayout = () => {
    if (pending) return;
    pending = true;
    const later = typeof requestAnimationFrame === "function" ? requestAnimationFrame : (cb) => setTimeout(cb, 16);
    later(() => {
      pending = false;
      if (!disposed) layoutLinks();
    });
  };
  const resizeObserver = typeof ResizeObserver === "function" ? new ResizeObserver(relayout) : null;
  if (resizeObserver) resizeObserver.observe(stage);

  renderAll();
  relayout();

  return () => {
    for (const [event, cb] of modelEvents) model.off(event, cb);
    if (resizeObserver) resizeObserver.disconnect();
    disposed = true;
    cancelDrag();
    root.removeEventListener("click", onClick);
    root.removeEventListener("keydown", onKeyDown);
    root.removeEventListener("keyup", onKeyUp);
    root.removeEventListener("pointerdown", onPointerDown);
    root.removeEventListener("pointermove", onPointerMove);
    root.removeEventListener("pointerup", onPointerUp);
    root.removeEventListener("pointercancel", onPointerCancel);
    root.removeEventListener("change", onWeightChange);
    removeBanner();
    root.remove();
  };
}

export default { render };
