// PingWidget front end: a label, a button that increments `count`, and a canvas that shows the
// latest grey frame sent from Python. Exercises every transport the real widgets use: synced
// traits both ways, Python -> JS custom messages with a binary buffer, JS -> Python replies.
//
// Every widget entry has the same shape, the factory `export default () => ({ initialize?, render })`:
// anywidget calls the factory once when it loads the widget for a model, so what the views of one
// model share (here the latest frame) lives in its closure and never on `model` (initialize and
// render get different model proxies).
import "../lib/common.css"; // the root style, buttons, the error banner and screen-reader-only classes
import "./ping.css";
import { createFrameStore } from "./ping/frames.js";
import { renderPing } from "./ping/view.js";

/** @typedef {import("../lib/types.js").PingTraits} PingTraits  the synced traits (widgets/ping.py) */

export default () => {
  const frames = createFrameStore();
  return {
    initialize: ({ model }) => frames.listen(model),
    render: (args) => renderPing(args, frames),
  };
};
