// The section tabs under the panel: which part the Studio shows there (attention playback, token
// alignment, schedule). A tab writes the `section` trait (Python shows that widget and hides the
// others); arrow keys, Home and End move between tabs and choose them (a WAI-ARIA tablist).
import { usesP2P } from "./methods.js";

/** @typedef {import("./view.js").StudioView} StudioView */

/** The tabs this Studio has (the aligner and timeline are optional). */
function available(v) {
  const has = { playback: true, alignment: v.model.get("has_aligner") === true, schedule: v.model.get("has_timeline") === true };
  return v.tabButtons.filter((t) => has[t.dataset.section]);
}

/** Which tab is chosen; the titles say when a section does not take part in the chosen method. */
export function showTabs(v) {
  const section = v.model.get("section") || "playback";
  const shown = available(v);
  const p2p = usesP2P(v);
  for (const tab of v.tabButtons) {
    tab.hidden = !shown.includes(tab);
    const on = tab.dataset.section === section;
    tab.setAttribute("aria-selected", on ? "true" : "false");
    tab.tabIndex = on ? 0 : -1;
    const base = { playback: "Attention playback", alignment: "Token alignment", schedule: "Schedule" }[tab.dataset.section];
    tab.textContent = !p2p && tab.dataset.section === "alignment" ? `${base} (P2P only)` : base;
  }
  v.tabsBox.hidden = shown.length < 2;
}

function choose(v, tab) {
  if (!tab || tab.getAttribute("aria-selected") === "true") return;
  v.commit({ section: tab.dataset.section });
}

function onKey(v, e) {
  const tabs = available(v);
  const i = tabs.indexOf(e.target);
  if (i < 0) return;
  const next = { ArrowRight: i + 1, ArrowLeft: i - 1, Home: 0, End: tabs.length - 1 }[e.key];
  if (next === undefined) return;
  e.preventDefault();
  const tab = tabs[(next + tabs.length) % tabs.length];
  tab.focus();
  choose(v, tab);
}

/**
 * @param {StudioView} v
 * @param {ReturnType<typeof import("../../lib/scope.js").createScope>} scope
 */
export function attachTabs(v, scope) {
  scope.on(v.tabsBox, "click", (e) => choose(v, e.target.closest(".p2p-studio__tab")));
  scope.on(v.tabsBox, "keydown", (e) => onKey(v, e));
}
