// The Outbox: with no SMTP server configured, the shop's emails are files; list them, show one.
// A message's HTML is shown in a sandboxed frame (no scripts, no same-origin access, no network
// beyond what the console's Content-Security-Policy allows, which is nothing from elsewhere).

import { api } from "./api.js";
import { facts, h, mount, table, timeEl } from "./dom.js";

const NAME = /^\d{8}T\d{6}-[A-Za-z0-9_-]{1,64}\.eml$/;

function messageLink(name, text) {
  return h("a", { href: `#/outbox/${encodeURIComponent(name)}` }, text || name);
}

export async function showOutbox(main) {
  const page = await api("notifications/outbox", { params: { limit: 100 } });
  if (!page.enabled) {
    mount(main, h("h2", null, "Outbox"),
      h("p", { class: "empty" }, "Mail goes to an SMTP server (SHOP_SMTP_HOST): there is no development outbox."));
    return null;
  }
  mount(main,
    h("h2", null, "Outbox"),
    h("p", { class: "muted" }, `Emails the shop would have sent, newest first: ${page.total} in `,
      h("code", null, page.folder), "."),
    page.items.length ? table("Outbox", [
      ["Date", (m) => timeEl(m.date)],
      ["To", (m) => h("span", { class: "mono" }, m.recipient || "—")],
      ["Subject", (m) => messageLink(m.name, m.subject || "(no subject)"), "wrap"],
      ["Size", (m) => `${Math.ceil(m.size / 1024)} KiB`],
    ], page.items) : h("p", { class: "empty" }, "No messages yet."));
  return null;
}

export async function showOutboxMessage(main, name) {
  if (!NAME.test(name)) throw new Error("not an outbox message name");
  const message = await api(`notifications/outbox/${encodeURIComponent(name)}`);
  const frame = h("iframe", { class: "mail-html", title: "The message as HTML", sandbox: "" });
  frame.srcdoc = message.html || "";
  mount(main,
    h("p", null, h("a", { href: "#/outbox" }, "← Outbox")),
    h("h2", null, message.subject || "(no subject)"),
    facts([
      ["To", message.recipient], ["Date", timeEl(message.date)],
      ["Message-ID", h("code", null, message.message_id || "—")], ["File", h("code", null, message.name)],
    ]),
    h("section", null, h("h3", null, "HTML"), message.html ? frame : h("p", { class: "empty" }, "No HTML part.")),
    h("section", null, h("h3", null, "Plain text"), h("pre", { class: "mail-text" }, message.text || "")),
    h("details", { class: "json" }, h("summary", null, "All headers"),
      h("pre", null, message.headers.map((header) => `${header.name}: ${header.value}`).join("\n"))));
  return null;
}
