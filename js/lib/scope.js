// Listener bookkeeping for a view: everything registered through a scope is undone by dispose().
//
//   const scope = createScope();
//   scope.on(root, "click", onClick);
//   scope.onModel(model, ["change:a", "change:b"], render);
//   scope.add(() => win.clearInterval(timer));     // any other cleanup
//   return () => scope.dispose();
//
// Cleanups run in reverse order of registration (last in, first out), each at most once. After
// dispose, on/onModel attach nothing and add runs its cleanup at once.

/**
 * @typedef {{ on(event: string, fn: Function): void, off(event: string, fn?: Function): void }} Observable
 */

export function createScope() {
  /** @type {Array<() => void>} */
  let undo = [];
  let disposed = false;

  const scope = {
    /** True once dispose() has run: late async callbacks can check it. */
    get disposed() {
      return disposed;
    },

    /**
     * addEventListener now, removeEventListener (same options) on dispose.
     * @param {EventTarget} target
     * @param {string} type
     * @param {EventListener} fn
     * @param {boolean | AddEventListenerOptions} [opts]
     */
    on(target, type, fn, opts) {
      if (disposed) return fn; // a late registration (after an await) attaches nothing
      target.addEventListener(type, fn, opts);
      undo.push(() => target.removeEventListener(type, fn, opts));
      return fn;
    },

    /**
     * model.on now, model.off on dispose; `events` is one name or a list of names.
     * @param {Observable} model
     * @param {string | string[]} events
     * @param {Function} fn
     */
    onModel(model, events, fn) {
      if (disposed) return fn;
      for (const event of Array.isArray(events) ? events : [events]) {
        model.on(event, fn);
        undo.push(() => model.off(event, fn));
      }
      return fn;
    },

    /**
     * Run `cleanup` on dispose (timers, observers, subscriptions, DOM removal).
     * @param {(() => void) | null | undefined} cleanup
     */
    add(cleanup) {
      if (typeof cleanup !== "function") return cleanup;
      if (disposed) cleanup();
      else undo.push(cleanup);
      return cleanup;
    },

    /** Undo everything, newest first; one failing step does not stop the rest (the first error is rethrown). */
    dispose() {
      if (disposed) return;
      disposed = true;
      const steps = undo.reverse();
      undo = [];
      let failure = null;
      for (const step of steps) {
        try {
          step();
        } catch (err) {
          failure = failure || err;
        }
      }
      if (failure) throw failure;
    },
  };
  return scope;
}
