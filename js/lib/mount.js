// Every widget view starts the same way: its layout built into the host, a scope whose cleanup
// removes it, and the keys its focused controls use kept from JupyterLab's shortcuts.
import { createBuilder } from "./dom.js";
import { keepControlKeys } from "./keys.js";
import { createScope } from "./scope.js";

/**
 * @template {{root: HTMLElement}} L
 * @param {HTMLElement} host the element anywidget renders into
 * @param {(el: import("./dom.js").Builder) => L} makeLayout builds the view's nodes
 * @returns {{el: import("./dom.js").Builder, ui: L, scope: ReturnType<typeof createScope>}}
 */
export function mountView(host, makeLayout) {
  const el = createBuilder(host.ownerDocument);
  const ui = makeLayout(el);
  host.appendChild(ui.root);
  const scope = createScope();
  scope.add(() => ui.root.remove());
  keepControlKeys(ui.root, scope);
  return { el, ui, scope };
}
