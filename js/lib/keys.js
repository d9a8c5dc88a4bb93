// Keys a focused control uses stay in the widget.
//
// JupyterLab binds plain keys in a notebook's command mode to selectors such as
// `.jp-Notebook.jp-mod-commandMode :focus` (ArrowLeft: "move to the heading above, or collapse
// it"). A focused range input, select, checkbox or button matches `:focus` itself, so Lumino
// takes the key before the control sees its default action, and `data-lm-suppress-shortcuts`
// on the widget's root is never reached (Lumino stops at the first element that matches).
// JupyterLab listens on the document in the bubbling phase: stopping propagation at the
// widget's root keeps the key for the control. Combinations with Ctrl, Alt or Meta pass
// through (Shift+Enter still runs the cell; the Studio handles Ctrl/Cmd+Enter itself), and so
// does Escape (it leaves the widget).

/** Keys that some control of ours uses (range, select, checkbox, button, text field, chips). */
export const CONTROL_KEYS = new Set([
  "ArrowLeft",
  "ArrowRight",
  "ArrowUp",
  "ArrowDown",
  "Home",
  "End",
  "PageUp",
  "PageDown",
  "Enter",
  " ",
  "Backspace",
  "Delete",
]);

/** Whether `node` is a control that takes keys (form fields, buttons, focusable parts). */
export function isControl(node) {
  if (!node || typeof node.matches !== "function") return false;
  return node.matches("input, select, textarea, button, [contenteditable], [tabindex], [role]");
}

/** Whether a keydown on `event.target` must stay inside the widget. */
export function keepsKey(event) {
  if (event.ctrlKey || event.metaKey || event.altKey) return false;
  if (!CONTROL_KEYS.has(event.key)) {
    // typing in a text field: every printable key is the field's
    const t = event.target;
    return !!t && (t.tagName === "TEXTAREA" || (t.tagName === "INPUT" && isTextInput(t))) && event.key.length === 1;
  }
  return isControl(event.target);
}

function isTextInput(input) {
  return ["text", "search", "number", "email", "url", "tel", "password", ""].includes(input.type);
}

/**
 * Stop keys that a focused control of `root` uses from reaching the page's shortcuts.
 * @param {HTMLElement} root
 * @param {{ on(target: EventTarget, type: string, fn: Function): unknown }} scope
 */
export function keepControlKeys(root, scope) {
  scope.on(root, "keydown", (e) => {
    if (keepsKey(e)) e.stopPropagation();
  });
}
