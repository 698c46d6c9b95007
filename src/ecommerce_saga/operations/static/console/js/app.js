// The console's entry point: sign-in, hash routing, the attention banner, and operator actions.

import { api, ApiError, clearToken, setToken, token } from "./api.js";
import { h, mount } from "./dom.js";
import { showOrder, showOrders, showSagas, showSearch } from "./lists.js";
import { showOutbox, showOutboxMessage } from "./outbox.js";
import { showSaga } from "./saga.js";

const main = document.getElementById("main");
const banner = document.getElementById("attention");
const status = document.getElementById("status");
const signOut = document.getElementById("sign-out");
const dialog = document.getElementById("operator-dialog");
const REFRESH_MS = 2000;
let refreshTimer = null;

function say(message) {
  status.textContent = message;
}

function showLogin(message) {
  clearToken();
  signOut.hidden = true;
  banner.hidden = true;
  const input = h("input", { id: "token", name: "token", type: "password", required: true, autocomplete: "off" });
  const form = h("form", { class: "login", id: "login" },
    h("h2", null, "Sign in"),
    h("p", null, "The console calls the saga API with an operator's token: the admin token (SHOP_ADMIN_TOKEN) ",
      "or an access token with the admin role (ecommerce-saga token --customer ops-1 --admin). "),
    h("p", null,
      "It is kept in this browser tab only, until the tab is closed."),
    message ? h("p", { class: "alert", role: "alert" }, message) : null,
    h("label", { for: "token" }, "Operator token"), input,
    h("button", { type: "submit", class: "primary" }, "Sign in"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    setToken(input.value.trim());
    try {
      await refreshBanner(); // an operator's call, and the cheapest: one status, counted from its index
    } catch (error) {
      showLogin(error instanceof ApiError && error.unauthorized ? "That token was not accepted." : String(error.message));
      return;
    }
    route();
  });
  mount(main, form);
  input.focus();
}

async function refreshBanner() {
  const page = await api("sagas", { params: { status: "REQUIRES_ATTENTION", limit: 1 } });
  banner.hidden = page.total === 0;
  mount(banner, h("strong", null, `⚠ ${page.total} saga${page.total === 1 ? "" : "s"} need${page.total === 1 ? "s" : ""} attention. `),
    h("a", { href: "#/sagas?status=REQUIRES_ATTENTION" }, "Show parked sagas"));
}

function askReason(action, saga) {
  const form = dialog.querySelector("form");
  form.reset();
  dialog.querySelector("#dialog-title").textContent = action === "retry"
    ? `Retry saga ${saga.saga_id}` : `Cancel saga ${saga.saga_id}`;
  dialog.querySelector("#dialog-help").textContent = action === "retry"
    ? "Resumes the saga where it stopped, with a fresh retry budget."
    : "Stops the saga and undoes its completed steps in reverse order.";
  dialog.querySelector("#dialog-error").textContent = "";
  dialog.showModal();
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "confirm"
      ? { reason: form.reason.value.trim(), actor: form.actor.value.trim() || undefined } : null), { once: true });
  });
}

async function act(action, saga) {
  const command = await askReason(action, saga);
  if (!command) return;
  try {
    await api(`sagas/${encodeURIComponent(saga.saga_id)}/${action}`, { body: command });
    say(action === "retry" ? `Saga ${saga.saga_id} resumed.` : `Saga ${saga.saga_id} is being cancelled.`);
  } catch (error) {
    say(`${action} failed: ${error.message}`);
  }
  route();
}

function schedule(saga) {
  clearTimeout(refreshTimer);
  const active = saga && (saga.status === "RUNNING" || saga.status === "COMPENSATING");
  if (active) refreshTimer = setTimeout(() => { if (!document.hidden) route({ quiet: true }); }, REFRESH_MS);
}

async function render(path, params) {
  const [, section, id] = path.split("/").map(decodeURIComponent);
  if (section === "saga" && id) return showSaga(main, id, act);
  if (section === "order" && id) return showOrder(main, id);
  if (section === "orders") return showOrders(main, params);
  if (section === "search") return showSearch(main, params.get("q") || "");
  if (section === "outbox") return id ? showOutboxMessage(main, id) : showOutbox(main);
  return showSagas(main, params);
}

async function route({ quiet = false } = {}) {
  clearTimeout(refreshTimer);
  if (!token()) {
    showLogin();
    return;
  }
  signOut.hidden = false;
  const [path, query] = (location.hash.slice(1) || "/sagas").split("?");
  if (!quiet) main.setAttribute("aria-busy", "true");
  delete main.dataset.route;
  try {
    const [result] = await Promise.all([render(path, new URLSearchParams(query)), refreshBanner()]);
    main.dataset.route = location.hash || "#/sagas"; // what is shown now (tests wait for it)
    schedule(result);
  } catch (error) {
    if (error instanceof ApiError && error.unauthorized) {
      showLogin("The admin token was refused; sign in again.");
    } else {
      mount(main, h("p", { class: "alert", role: "alert" },
        error instanceof ApiError && error.status === 404 ? "Not found." : `Something went wrong: ${error.message}`),
        h("p", null, h("a", { href: "#/sagas" }, "Back to the sagas")));
    }
  } finally {
    main.removeAttribute("aria-busy");
  }
}

document.getElementById("search").addEventListener("submit", (event) => {
  event.preventDefault();
  const q = event.target.q.value.trim();
  if (q) location.hash = `#/search?q=${encodeURIComponent(q)}`;
});
signOut.addEventListener("click", () => showLogin("Signed out."));
window.addEventListener("hashchange", () => {
  say("");
  route();
});
route();
