// The list pages: sagas, orders, one order with its sagas, and search results.

import { api, apiOrNull, SAFE_ID, SAFE_ID_ATTRIBUTE } from "./api.js";
import { badge, facts, h, money, mount, orderLink, sagaLink, table, timeEl } from "./dom.js";

const PAGE = 20;
const SAGA_STATUSES = ["RUNNING", "COMPENSATING", "COMPLETED", "COMPENSATED", "REQUIRES_ATTENTION"];
const ORDER_STATUSES = ["PENDING", "COMPLETED", "FAILED", "CANCELLING", "CANCELLED", "REQUIRES_ATTENTION"];
const SAGA_TYPES = ["place-order", "cancel-order"];

function select(id, label, options, value) {
  return h("label", { for: id }, label,
    h("select", { id, name: id },
      h("option", { value: "" }, "any"),
      options.map((o) => h("option", { value: o, selected: o === value }, o.replaceAll("_", " ").toLowerCase()))));
}

function filterForm(route, fields) {
  const form = h("form", { class: "filters", "aria-label": "Filters" }, fields,
    h("button", { type: "submit" }, "Apply"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const params = new URLSearchParams();
    for (const [name, value] of new FormData(form)) if (value) params.set(name, String(value).trim());
    location.hash = `#/${route}?${params}`;
  });
  form.addEventListener("change", () => form.requestSubmit());
  return form;
}

function pager(route, params, page) {
  const from = page.total ? page.skip + 1 : 0;
  const to = page.skip + page.items.length;
  const link = (skip, text, rel) => {
    const next = new URLSearchParams(params);
    next.set("skip", String(skip));
    return h("a", { href: `#/${route}?${next}`, class: "button", rel }, text);
  };
  return h("nav", { class: "pager", "aria-label": "Pages" },
    page.skip > 0 ? link(Math.max(page.skip - PAGE, 0), "← Newer", "prev") : null,
    h("span", null, `${from}–${to} of ${page.total}`),
    to < page.total ? link(page.skip + PAGE, "Older →", "next") : null);
}

/** The saga table, parked sagas highlighted. */
export function sagaTable(sagas) {
  if (!sagas.length) return h("p", { class: "empty" }, "No sagas.");
  return table("Sagas", [
    ["Saga", (x) => sagaLink(x.saga_id)],
    ["Type", (x) => x.saga_type],
    ["Status", (x) => badge(x.status)],
    ["Order", (x) => orderLink(x.correlation_id)],
    ["Current step", (x) => x.current_step ? `${x.current_phase === "compensation" ? "undo " : ""}${x.current_step}` : "—"],
    ["Failure", (x) => x.failure_code ? h("span", null, h("code", null, x.failure_code), " ", h("span", { class: "muted" }, x.failure_message || "")) : "—", "wrap"],
    ["Updated", (x) => timeEl(x.updated_at)],
    ["Lease owner", (x) => h("span", { class: "mono small" }, x.lease_owner || "—")],
  ], sagas, (x) => x.parked ? "parked" : null);
}

function orderTable(orders) {
  if (!orders.length) return h("p", { class: "empty" }, "No orders.");
  return table("Orders", [
    ["Order", (o) => orderLink(o.order_id)],
    ["Customer", (o) => h("span", { class: "mono" }, o.customer_id)],
    ["Status", (o) => badge(o.status)],
    ["Failure reason", (o) => o.failure_reason ? o.failure_reason.replaceAll("_", " ").toLowerCase() : "—"],
    ["Total", (o) => money(o.total_cents, o.currency)],
    ["Created", (o) => timeEl(o.created_at)],
    ["Saga", (o) => sagaLink(o.saga_id)],
  ], orders, (o) => o.status === "REQUIRES_ATTENTION" ? "parked" : null);
}

/** `#/sagas?status=&type=&skip=` */
export async function showSagas(root, params) {
  const query = { status: params.get("status"), type: params.get("type"), skip: params.get("skip"), limit: PAGE };
  const page = await api("sagas", { params: query });
  mount(root,
    h("h2", null, "Sagas"),
    filterForm("sagas", [
      select("status", "Status", SAGA_STATUSES, params.get("status")),
      select("type", "Type", SAGA_TYPES, params.get("type")),
    ]),
    h("div", { class: "scroll" }, sagaTable(page.items)),
    pager("sagas", params, page));
}

/** `#/orders?status=&customer_id=&skip=` */
export async function showOrders(root, params) {
  const customer = params.get("customer_id") || "";
  const query = { status: params.get("status"), customer_id: customer, skip: params.get("skip"), limit: PAGE };
  const page = await api("orders", { params: query });
  mount(root,
    h("h2", null, "Orders"),
    filterForm("orders", [
      select("status", "Status", ORDER_STATUSES, params.get("status")),
      h("label", { for: "customer_id" }, "Customer id",
        h("input", { id: "customer_id", name: "customer_id", value: customer, pattern: SAFE_ID_ATTRIBUTE, size: 18 })),
    ]),
    h("div", { class: "scroll" }, orderTable(page.items)),
    pager("orders", params, page));
}

/** `#/order/<id>`: the order and every saga that worked on it. */
export async function showOrder(root, id) {
  const [order, sagas] = await Promise.all([
    api(`orders/${encodeURIComponent(id)}`),
    api("sagas", { params: { order_id: id, limit: 100 } }),
  ]);
  const lines = table("Items", [
    ["Product", (l) => h("span", { class: "mono" }, l.product_id)],
    ["Name", (l) => l.name],
    ["Quantity", (l) => String(l.quantity)],
    ["Line total", (l) => money(l.line_total_cents, order.currency)],
  ], order.items);
  mount(root,
    h("p", { class: "crumbs" }, h("a", { href: "#/orders" }, "← All orders")),
    h("div", { class: "title-row" }, h("h2", null, "Order ", h("span", { class: "mono" }, order.order_id)), badge(order.status)),
    facts([
      ["Customer", h("span", { class: "mono" }, order.customer_id)],
      ["Total", money(order.total_cents, order.currency)],
      ["Failure", order.failure_reason ? `${order.failure_reason}: ${order.failure_detail || ""}` : "—"],
      ["Payment", order.payment.brand ? `${order.payment.brand} •••• ${order.payment.last4}` : order.payment.method],
      ["Tracking", order.tracking_number || "—"],
      ["Created", timeEl(order.created_at)],
    ]),
    h("h3", null, "Sagas"), h("div", { class: "scroll" }, sagaTable(sagas.items)),
    h("h3", null, "Items"), lines);
}

/** `#/search?q=`: by saga id, order id, or customer id. */
export async function showSearch(root, q) {
  if (!SAFE_ID.test(q)) {
    mount(root, h("h2", null, "Search"), h("p", { class: "alert", role: "alert" },
      "Ids are letters, digits, “-” and “_” (at most 64)."));
    return;
  }
  const [bySagaId, byOrder, byCustomer] = await Promise.all([
    apiOrNull(`sagas/${encodeURIComponent(q)}`),
    api("sagas", { params: { order_id: q, limit: 100 } }),
    api("orders", { params: { customer_id: q, limit: 20 } }),
  ]);
  const customerSagas = await Promise.all(byCustomer.items.map((o) =>
    api("sagas", { params: { order_id: o.order_id, limit: 100 } })));
  const sagas = new Map();
  for (const saga of [bySagaId, ...byOrder.items, ...customerSagas.flatMap((p) => p.items)]) {
    if (saga) sagas.set(saga.saga_id, saga);
  }
  mount(root,
    h("h2", null, "Results for ", h("span", { class: "mono" }, q)),
    h("h3", null, `Sagas (${sagas.size})`),
    h("div", { class: "scroll" }, sagaTable([...sagas.values()])),
    byCustomer.items.length ? [h("h3", null, `Orders of customer ${q}`), h("div", { class: "scroll" }, orderTable(byCustomer.items))] : null);
}
