// Building DOM for the views: one element builder, text always through textContent.
//
//   const el = createBuilder(host.ownerDocument);
//   el("button", { class: "p2p-btn", type: "button", text: label, "aria-pressed": "false" });
//   el("label", {}, [box, " follow live"]);          // string children become text nodes
//   el.svg("line", { class: "p2p-aligner__ghost", visibility: "hidden" });
//
// Nothing is ever parsed as markup: prompt text and token text come from users and must stay text.

const SVG_NS = "http://www.w3.org/2000/svg";

/**
 * @typedef {Object<string, unknown> & {
 *   class?: string,
 *   text?: unknown,
 *   dataset?: Object<string, unknown>,
 *   style?: Object<string, string>,
 * }} Attrs
 * - `class`: the class name (skipped when empty);
 * - `text`: textContent (String(text));
 * - `dataset`: data-* values (as strings);
 * - `style`: inline style properties (custom properties `--x` through setProperty);
 * - names with a dash (`aria-label`, `data-x`) and `role`: setAttribute(name, String(value));
 * - a name the element has as a property is assigned (`type`, `value`, `tabIndex`, `hidden`,
 *   `title`, `spellcheck`, ...), in the order given (an input's `type` must come before its `value`);
 * - any other name: setAttribute(name, String(value)) (e.g. `spellcheck` where the DOM lacks it).
 * null and undefined values are skipped.
 */

/** @typedef {Node | string | number | null | undefined | false} Child */

function setAll(node, attrs) {
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined) continue;
    if (name === "class") {
      if (value) node.className = String(value);
    } else if (name === "text") node.textContent = String(value);
    else if (name === "dataset") for (const [k, v] of Object.entries(value)) node.dataset[k] = String(v);
    else if (name === "style") setStyle(node, value);
    else if (name === "role" || name.includes("-") || !(name in node)) node.setAttribute(name, String(value));
    else node[name] = value;
  }
}

function setStyle(node, style) {
  for (const [k, v] of Object.entries(style)) {
    if (k.startsWith("--")) node.style.setProperty(k, String(v));
    else node.style[k] = v;
  }
}

function appendChildren(doc, node, children) {
  for (const child of children || []) {
    if (child === null || child === undefined || child === false) continue;
    node.append(typeof child === "string" || typeof child === "number" ? doc.createTextNode(String(child)) : child);
  }
}

/**
 * An element builder bound to `doc` (a view's host.ownerDocument, which need not be the global one).
 * @param {Document} doc
 */
export function createBuilder(doc) {
  /**
   * @param {string} tag
   * @param {Attrs} [attrs]
   * @param {Child[]} [children]
   * @returns {HTMLElement}
   */
  const el = (tag, attrs, children) => {
    const node = doc.createElement(tag);
    setAll(node, attrs);
    appendChildren(doc, node, children);
    return node;
  };
  /**
   * An SVG element; every attribute through setAttribute (SVG has no reflected `class` property).
   * @param {string} tag
   * @param {Object<string, unknown>} [attrs]
   * @param {Child[]} [children]
   * @returns {SVGElement}
   */
  el.svg = (tag, attrs, children) => {
    const node = doc.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) if (v !== null && v !== undefined) node.setAttribute(k, String(v));
    appendChildren(doc, node, children);
    return node;
  };
  /** A text node (for text next to elements). @param {unknown} text */
  el.text = (text) => doc.createTextNode(String(text));
  el.doc = doc;
  return el;
}

/** @typedef {ReturnType<typeof createBuilder>} Builder */

/**
 * A <select> of [value, text] options.
 * @param {Builder} el
 * @param {Attrs} attrs
 * @param {Array<[string, string]>} options
 */
export function selectOf(el, attrs, options) {
  return el("select", attrs, options.map(([value, text]) => el("option", { value, text })));
}

/**
 * A button that submits nothing, styled by common.css's .p2p-btn.
 * @param {Builder} el
 * @param {string} className extra classes
 * @param {string} text
 * @param {Attrs} [attrs]
 */
export function button(el, className, text, attrs = {}) {
  return el("button", { class: `p2p-btn ${className}`.trim(), type: "button", text, ...attrs });
}
