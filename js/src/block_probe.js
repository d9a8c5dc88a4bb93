// BlockProbe front end: one bar per transformer block (double-stream, then single-stream, by
// depth), as tall as its score from engine/probe.py's block_importance; hovering or focusing a bar
// shows its block and score, clicking toggles it into `selected` (the blocks of a K/V rule).
// Python (widgets/block_probe.py) computes the scores and checks every write; this only renders
// and edits `selected`. Parts: bars (pure helpers), view.
//
// Every widget entry has the same shape, the factory `export default () => ({ initialize?, render })`:
// see ping.js for why.
import "../lib/common.css";
import "./block_probe.css";
import { renderBlockProbe } from "./block_probe/view.js";

export default () => ({ render: (args) => renderBlockProbe(args) });
