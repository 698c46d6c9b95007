// DOM helpers. Every string becomes a text node or an attribute value: the console never parses
// data as HTML (no innerHTML anywhere), so whatever a saga's history holds is shown, not run.

const SVG_NS = "http://www.w3.org/2000/svg";

function append(parent, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    parent.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return parent;
}

function setAttributes(el, attrs) {
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      el.addEventListener(name.slice(2), value);
    } else if (name === "class") {
      el.setAttribute("class", Array.isArray(value) ? value.filter(Boolean).join(" ") : value);
    } else {
      el.setAttribute(name, value === true ? "" : String(value));
    }
  }
  return el;
}

/** An HTML element: h("a", {href: "#/x"}, "text", child, [more]). */
export function h(tag, attrs, ...children) {
  return append(setAttributes(document.createElement(tag), attrs), children);
}

/** An SVG element, same calling convention as `h`. */
export function s(tag, attrs, ...children) {
  return append(setAttributes(document.createElementNS(SVG_NS, tag), attrs), children);
}

/** Replace everything inside `el` with `children`. */
export function mount(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

const STATUS_CLASS = {
  RUNNING: "running",
  PENDING: "running",
  STARTED: "running",
  COMPENSATING: "compensating",
  CANCELLING: "compensating",
  COMPLETED: "ok",
  SUCCEEDED: "ok",
  COMPENSATED: "undone",
  CANCELLED: "undone",
  FAILED: "failed",
  REQUIRES_ATTENTION: "parked",
};

/** A coloured status badge; parked sagas get a warning sign, not only a colour. */
export function badge(status) {
  const label = status === "REQUIRES_ATTENTION" ? "⚠ REQUIRES ATTENTION" : status.replaceAll("_", " ");
  return h("span", { class: ["badge", STATUS_CLASS[status] || "neutral"] }, label);
}

const dateTime = new Intl.DateTimeFormat(undefined, {
  year: "numeric", month: "2-digit", day: "2-digit",
  hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false,
});

/** A local date-time for an ISO string, or an em dash. */
export function when(iso) {
  return iso ? dateTime.format(new Date(iso)) : "—";
}

/** A local time of day with milliseconds: "14:03:07.125". */
export function clock(iso) {
  const t = new Date(iso);
  const pad = (n, w = 2) => String(n).padStart(w, "0");
  return `${pad(t.getHours())}:${pad(t.getMinutes())}:${pad(t.getSeconds())}.${pad(t.getMilliseconds(), 3)}`;
}

/** A `<time>` element showing `format(iso)` (a local date-time), with the ISO value kept in `datetime`. */
export function timeEl(iso, format = when) {
  return iso ? h("time", { datetime: iso, title: iso }, format(iso)) : "—";
}

/** "12 ms", "1.24 s", "3 min 5 s". */
export function duration(ms) {
  if (ms === null || ms === undefined) return "—";
  if (ms < 1000) return `${ms < 10 ? ms.toFixed(1) : Math.round(ms)} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(2)} s`;
  return `${Math.floor(ms / 60000)} min ${Math.round((ms % 60000) / 1000)} s`;
}

/** Cents as money: 2500, "USD" -> "$25.00". */
export function money(cents, currency) {
  try {
    return new Intl.NumberFormat(undefined, { style: "currency", currency }).format(cents / 100);
  } catch {
    return `${(cents / 100).toFixed(2)} ${currency}`;
  }
}

/** A link to a saga's page. */
export function sagaLink(id) {
  return h("a", { href: `#/saga/${encodeURIComponent(id)}`, class: "mono" }, id);
}

/** A link to an order's page. */
export function orderLink(id) {
  return id ? h("a", { href: `#/order/${encodeURIComponent(id)}`, class: "mono" }, id) : "—";
}

/**
 * A table: columns is [[heading, cell(row) -> node|string, cellClass?], ...]; rowClass(row) -> class.
 * Cells do not wrap unless their column's class is "wrap".
 */
export function table(caption, columns, rows, rowClass = () => null) {
  return h("table", { class: "grid" },
    h("caption", { class: "visually-hidden" }, caption),
    h("thead", null, h("tr", null, columns.map(([title]) => h("th", { scope: "col" }, title)))),
    h("tbody", null, rows.map((row) =>
      h("tr", { class: rowClass(row) }, columns.map(([, cell, cls]) => h("td", { class: cls }, cell(row)))))));
}

/** A definition list of [term, value] pairs. */
export function facts(pairs) {
  return h("dl", { class: "facts" },
    pairs.map(([term, value]) => h("div", null, h("dt", null, term), h("dd", null, value ?? "—"))));
}
