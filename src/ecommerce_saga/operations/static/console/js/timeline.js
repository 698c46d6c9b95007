// A saga's timeline as an SVG sequence diagram drawn from its real history: one row per attempt,
// an arrow from the coordinator to the participant the step calls. Failed attempts are red with a
// cross, compensations dashed purple arrows, attempts in flight dotted blue, operator actions notes.
// Built with DOM calls only (textContent and attributes), so no saga data is ever parsed as markup.

import { duration, s } from "./dom.js";

export const PARTICIPANTS = [
  { id: "coordinator", label: ["Order Saga", "Coordinator"] },
  { id: "inventory", label: ["Inventory"] },
  { id: "payment", label: ["Payment"] },
  { id: "shipping", label: ["Shipping"] },
  { id: "notification", label: ["Notification"] },
];

const STEP_PARTICIPANT = {
  create_order: "coordinator",
  confirm_order: "coordinator",
  begin_cancellation: "coordinator",
  finish_cancellation: "coordinator",
  reserve_inventory: "inventory",
  release_inventory: "inventory",
  process_payment: "payment",
  refund_payment: "payment",
  schedule_shipping: "shipping",
  cancel_shipping: "shipping",
  send_confirmation: "notification",
  send_cancellation: "notification",
};

const KEYWORDS = [
  [/inventor|stock|reserv|release/, "inventory"],
  [/pay|charge|refund/, "payment"],
  [/ship|deliver/, "shipping"],
  [/notif|send|mail/, "notification"],
];

/** The participant a step calls: the known order steps, else a guess by name, else the coordinator. */
export function participantOf(step) {
  if (STEP_PARTICIPANT[step]) return STEP_PARTICIPANT[step];
  const match = KEYWORDS.find(([pattern]) => pattern.test(step));
  return match ? match[1] : "coordinator";
}

const LEFT = 70; // elapsed-time gutter
const RIGHT = 84; // duration gutter
const TOP = 64; // participant boxes
const ROW = 34;
let WIDTH = 1000;
let LANE = (WIDTH - LEFT - RIGHT) / PARTICIPANTS.length;

function layout(width) {
  WIDTH = Math.round(Math.min(Math.max(width, 860), 1400));
  LANE = (WIDTH - LEFT - RIGHT) / PARTICIPANTS.length;
}

const laneX = (id) => LEFT + LANE * (PARTICIPANTS.findIndex((p) => p.id === id) + 0.5);

let diagramCount = 0;

function markers(prefix) {
  const kinds = { ok: "#1a7f37", failed: "#cf222e", undo: "#8250df", running: "#0969da" };
  return s("defs", null, Object.entries(kinds).map(([kind, colour]) =>
    s("marker", {
      id: `${prefix}-${kind}`, viewBox: "0 0 10 10", refX: 9, refY: 5,
      markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse",
    }, s("path", { d: "M0,0 L10,5 L0,10 z", fill: colour }))));
}

function kindOf(entry) {
  if (entry.status === "STARTED") return "running";
  if (entry.status === "FAILED") return "failed";
  return entry.phase === "compensation" ? "undo" : "ok";
}

function labelOf(entry) {
  const verb = entry.phase === "compensation" ? `undo ${entry.step}` : entry.step;
  const attempt = entry.attempt > 1 ? ` #${entry.attempt}` : "";
  let outcome = "";
  if (entry.status === "FAILED") outcome = ` ✕ ${entry.error?.code || entry.error?.type || "failed"}`;
  if (entry.status === "STARTED") outcome = " … in flight";
  return `${verb}${attempt}${outcome}`;
}

function tooltip(entry) {
  const lines = [`${entry.phase} ${entry.step}, attempt ${entry.attempt}: ${entry.status}`];
  if (entry.duration_ms !== null && entry.duration_ms !== undefined) lines.push(`took ${duration(entry.duration_ms)}`);
  if (entry.error) lines.push(`${entry.error.type}${entry.error.code ? ` (${entry.error.code})` : ""}: ${entry.error.message}`);
  if (entry.worker) lines.push(`worker ${entry.worker}`);
  return lines.join("\n");
}

function clip(text, width) {
  const max = Math.max(8, Math.floor(width / 6.6));
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

function header() {
  return PARTICIPANTS.map((p) => {
    const x = laneX(p.id);
    const lines = p.label.map((line, i) =>
      s("text", { x, y: p.label.length === 1 ? 34 : 27 + i * 15, class: "tl-participant" }, line));
    return s("g", null, s("rect", { x: x - LANE / 2 + 8, y: 10, width: LANE - 16, height: 40, rx: 6, class: "tl-box" }), lines);
  });
}

function operatorRow(entry, y) {
  const text = `Operator ${entry.step} by ${entry.actor || "?"}: ${entry.reason || ""}`;
  const width = WIDTH - LEFT - RIGHT - 16;
  return s("g", { class: "tl-row tl-operator" },
    s("title", null, text),
    s("rect", { x: LEFT + 8, y: y - 13, width, height: 24, rx: 4, class: "tl-note" }),
    s("text", { x: LEFT + 18, y: y + 4, class: "tl-note-text" }, clip(text, width - 20)));
}

function stepRow(entry, y, prefix) {
  const kind = kindOf(entry);
  const from = laneX("coordinator");
  const to = laneX(participantOf(entry.step));
  const label = labelOf(entry);
  const parts = [s("title", null, tooltip(entry))];
  const line = { class: `tl-arrow tl-${kind} tl-${entry.phase}`, "marker-end": `url(#${prefix}-${kind})` };
  if (to === from) {
    parts.push(s("path", { ...line, d: `M${from + 3},${y - 9} h34 v14 h-32`, fill: "none" }));
    parts.push(s("text", { x: from + 44, y: y + 2, class: `tl-label tl-${kind}-text`, "text-anchor": "start" },
      clip(label, LANE * 1.6)));
  } else {
    parts.push(s("line", { ...line, x1: from + 3, y1: y, x2: to - 4, y2: y }));
    const text = clip(label, Math.abs(to - from) + LANE * 0.6);
    const centred = (from + to) / 2 - (text.length * 6.6) / 2 > LEFT + 4; // else it would run into the gutter
    parts.push(s("text", {
      x: centred ? (from + to) / 2 : from + 6, y: y - 6,
      class: `tl-label tl-${kind}-text`, "text-anchor": centred ? "middle" : "start",
    }, text));
  }
  if (kind === "failed") {
    const cx = to === from ? from + 37 : to - 12;
    const cy = to === from ? y - 2 : y;
    parts.push(s("path", { d: `M${cx - 5},${cy - 5} l10,10 m0,-10 l-10,10`, class: "tl-cross" }));
  }
  return s("g", { class: `tl-row tl-row-${kind}`, "data-step": entry.step, "data-phase": entry.phase }, parts);
}

/** The SVG sequence diagram of `saga.history`, `width` pixels wide (clamped to 860..1400). */
export function renderTimeline(saga, width = 1000) {
  layout(width);
  const prefix = `tl${++diagramCount}`;
  const history = saga.history;
  const height = TOP + 18 + Math.max(history.length, 1) * ROW;
  const start = history.length ? Date.parse(history[0].started_at) : 0;
  const rows = history.map((entry, i) => {
    const y = TOP + 30 + i * ROW;
    const elapsed = (Date.parse(entry.started_at) - start) / 1000;
    return s("g", null,
      s("text", { x: LEFT - 10, y: y + 4, class: "tl-time", "text-anchor": "end" }, `+${elapsed.toFixed(3)} s`),
      entry.phase === "operator" ? operatorRow(entry, y) : stepRow(entry, y, prefix),
      s("text", { x: WIDTH - 8, y: y + 4, class: "tl-time", "text-anchor": "end" }, entry.phase === "operator" ? "" : duration(entry.duration_ms)));
  });
  const lifelines = PARTICIPANTS.map((p) =>
    s("line", { x1: laneX(p.id), y1: 50, x2: laneX(p.id), y2: height - 4, class: "tl-lifeline" }));
  const title = `Timeline of saga ${saga.saga_id}`;
  const desc = `${history.length} recorded attempts and operator actions, oldest first.`;
  return s("svg", {
    viewBox: `0 0 ${WIDTH} ${height}`, width: WIDTH, height, role: "img",
    "aria-labelledby": `${prefix}-title ${prefix}-desc`, class: "timeline-svg",
  },
  s("title", { id: `${prefix}-title` }, title),
  s("desc", { id: `${prefix}-desc` }, desc),
  markers(prefix),
  s("text", { x: LEFT - 10, y: TOP - 2, class: "tl-gutter-head", "text-anchor": "end" }, "elapsed"),
  s("text", { x: WIDTH - 8, y: TOP - 2, class: "tl-gutter-head", "text-anchor": "end" }, "took"),
  lifelines, header(), rows);
}
