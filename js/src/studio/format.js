// Text the studio shows for values (no DOM).

export const STATUS_TEXT = {
  idle: "ready",
  running: "running",
  stopping: "stopping…",
  done: "done",
  stopped: "stopped early",
  error: "failed (see the message above)",
};

/** Reweight value shown next to a slider. */
export function formatWeight(v) {
  return (Math.round(v * 10) / 10).toFixed(1);
}

/** The status line: state, the phase while running, the step count while running or stopped. */
export function statusLine(status, phase, done, total) {
  let text = STATUS_TEXT[status] || status;
  if (phase && (status === "running" || status === "stopping")) text += ` · ${phase}`;
  if ((status === "running" || status === "stopping" || status === "stopped") && total) text += ` · step ${done}/${total}`;
  return text;
}
