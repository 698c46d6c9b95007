// The saga page: facts, steps, the timeline picture, every attempt, and the operator's actions.

import { api } from "./api.js";
import { badge, clock, duration, facts, h, mount, orderLink, table, timeEl } from "./dom.js";
import { participantOf, PARTICIPANTS, renderTimeline } from "./timeline.js";

const LEGEND = [
  ["ok", "succeeded"],
  ["failed", "failed attempt"],
  ["undo", "compensation"],
  ["running", "in flight"],
  ["operator", "operator action"],
];

function currentStep(saga) {
  if (!saga.current_step) return "—";
  return saga.current_phase === "compensation" ? `undo ${saga.current_step}` : saga.current_step;
}

function lease(saga) {
  if (!saga.lease_owner) return "—";
  return saga.lease_expires_at ? h("span", null, saga.lease_owner, " until ", timeEl(saga.lease_expires_at))
    : h("span", null, saga.lease_owner, h("span", { class: "muted" }, " (released)"));
}

function failure(saga) {
  const f = saga.failure;
  return f ? h("span", null, h("code", null, f.code || f.type), " ", f.message) : "—";
}

function stepsStrip(saga) {
  if (!saga.steps.length) return h("p", { class: "muted" }, "This app does not run sagas of this type.");
  return h("ol", { class: "steps", "aria-label": "Steps" }, saga.steps.map((step) =>
    h("li", { class: ["step", `step-${step.status.toLowerCase()}`], "data-step": step.name },
      h("span", { class: "step-name" }, step.name),
      h("span", { class: "step-meta" }, `${step.status.toLowerCase()} · ${step.kind}`,
        step.attempts > 1 ? ` · ${step.attempts} attempts` : ""))));
}

function compensation(saga) {
  const c = saga.compensation;
  if (!c.total) return null;
  return h("p", { class: "compensation" }, `Compensation ${c.position} of ${c.total} done`,
    c.done.length ? ` (undone: ${c.done.join(", ")})` : "", c.pending.length ? ` · pending: ${c.pending.join(", ")}` : "");
}

function legend() {
  return h("ul", { class: "legend", "aria-label": "Legend" },
    LEGEND.map(([kind, text]) => h("li", null, h("span", { class: ["swatch", `swatch-${kind}`] }), text)));
}

function errorCell(entry) {
  if (!entry.error) return entry.reason ? h("span", null, h("em", null, entry.actor || ""), ": ", entry.reason) : "";
  return h("span", null, h("code", null, entry.error.code || entry.error.type), " ", entry.error.message);
}

function attempts(saga) {
  const participant = (entry) => entry.phase === "operator" ? "operator"
    : PARTICIPANTS.find((p) => p.id === participantOf(entry.step)).label.join(" ");
  return table("Every attempt, compensation and operator action", [
    ["#", (e) => String(saga.history.indexOf(e) + 1)],
    ["Step", (e) => h("span", { class: "mono" }, e.step)],
    ["Phase", (e) => e.phase],
    ["Participant", participant],
    ["Attempt", (e) => String(e.attempt)],
    ["Status", (e) => badge(e.status)],
    ["Started", (e) => timeEl(e.started_at, clock)],
    ["Duration", (e) => duration(e.duration_ms)],
    ["Error / reason", errorCell, "wrap"],
    ["Worker", (e) => h("span", { class: "mono small" }, e.worker || "—")],
  ], saga.history, (e) => `row-${e.phase} row-${e.status.toLowerCase()}`);
}

function json(title, value) {
  return h("details", { class: "json" }, h("summary", null, title),
    h("pre", null, JSON.stringify(value, null, 2)));
}

function actionBar(saga, act) {
  const buttons = [];
  if (saga.actions.retry) {
    buttons.push(h("button", { type: "button", class: "primary", id: "retry", onclick: () => act("retry", saga) }, "Retry…"));
  }
  if (saga.actions.cancel) {
    buttons.push(h("button", { type: "button", class: "danger", id: "cancel", onclick: () => act("cancel", saga) }, "Cancel saga…"));
  }
  return buttons.length ? h("div", { class: "actions" }, buttons) : null;
}

function parkedAlert(saga) {
  if (!saga.parked) return null;
  const last = saga.history.findLast((e) => e.status === "FAILED");
  const undoing = saga.parked_from === "COMPENSATING";
  return h("div", { class: "alert", role: "alert" }, h("strong", null, "This saga needs attention. "),
    `It ran out of retries while ${undoing ? "undoing" : "running"} ${saga.current_step || "a step"}`,
    last?.error ? [" (", h("code", null, last.error.code || last.error.type), ` ${last.error.message})`] : "",
    undoing && saga.failure ? [", compensating after ", h("code", null, saga.failure.code || saga.failure.type)] : "",
    ". Fix the cause, then retry it.");
}

/** Render the saga page for `saga` into `root`; `act(action, saga)` runs retry or cancel. */
export function renderSaga(root, saga, act) {
  mount(root,
    h("p", { class: "crumbs" }, h("a", { href: "#/sagas" }, "← All sagas")),
    h("div", { class: "title-row" },
      h("h2", null, "Saga ", h("span", { class: "mono" }, saga.saga_id)), badge(saga.status), actionBar(saga, act)),
    parkedAlert(saga),
    facts([
      ["Type", saga.saga_type],
      ["Order", orderLink(saga.correlation_id)],
      ["Current step", currentStep(saga)],
      ["Failure", failure(saga)],
      ["Created", timeEl(saga.created_at)],
      ["Updated", timeEl(saga.updated_at)],
      ["Lease", lease(saga)],
      ["Version · fencing token", `${saga.version} · ${saga.fencing_token}`],
    ]),
    h("section", { "aria-labelledby": "steps-h" }, h("h3", { id: "steps-h" }, "Steps"), stepsStrip(saga), compensation(saga)),
    h("section", { "aria-labelledby": "timeline-h" }, h("h3", { id: "timeline-h" }, "Timeline"),
      h("div", { id: "timeline", class: "timeline" }, renderTimeline(saga, root.clientWidth - 64)), legend()),
    h("section", { "aria-labelledby": "attempts-h" }, h("h3", { id: "attempts-h" }, "Attempts"),
      h("div", { class: "scroll" }, attempts(saga))),
    h("section", { "aria-labelledby": "data-h" }, h("h3", { id: "data-h" }, "Data"),
      json("Input (secrets masked)", saga.input), json("Step outputs", saga.outputs)));
}

/** Load and render a saga page; returns the saga. */
export async function showSaga(root, id, act) {
  const saga = await api(`sagas/${encodeURIComponent(id)}`);
  renderSaga(root, saga, act);
  return saga;
}
