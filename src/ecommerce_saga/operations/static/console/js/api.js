// The console's HTTP client: the admin token (kept for this browser tab only) and JSON calls.

const TOKEN_KEY = "ecommerce-saga.console.token";

/** The API's base URL: the page lives at <prefix>/console, the API at <prefix>/api. */
const API_BASE = new URL("api/", document.baseURI);

export function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(value) {
  sessionStorage.setItem(TOKEN_KEY, value);
}

export function clearToken() {
  sessionStorage.removeItem(TOKEN_KEY);
}

/** An HTTP error answer; `problem` is the problem+json document when there is one. */
export class ApiError extends Error {
  constructor(status, problem) {
    super(problem?.detail || problem?.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
    this.code = problem?.code;
  }

  get unauthorized() {
    return this.status === 401 || this.status === 403;
  }
}

/**
 * Call the API: api("sagas", {params: {status: "RUNNING"}}), api("sagas/x/retry", {body: {...}}).
 * A body makes it a POST. Empty and null parameters are left out; arrays repeat the parameter.
 */
export async function api(path, { params, body } = {}) {
  const url = new URL(path, API_BASE);
  for (const [name, value] of Object.entries(params || {})) {
    for (const item of [value].flat()) {
      if (item !== null && item !== undefined && item !== "") url.searchParams.append(name, item);
    }
  }
  const headers = { Accept: "application/json" };
  const current = token();
  if (current) headers.Authorization = `Bearer ${current}`;
  const init = { headers, cache: "no-store" };
  if (body !== undefined) {
    init.method = "POST";
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(url, init);
  const isJson = /json/.test(response.headers.get("content-type") || "");
  const data = isJson ? await response.json() : null;
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

/** Like `api`, but null for a 404 instead of an error. */
export async function apiOrNull(path, options) {
  try {
    return await api(path, options);
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) return null;
    throw error;
  }
}

/** Ids the API accepts (shared.contracts.SAFE_ID_PATTERN). */
export const SAFE_ID = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;

/** The same, as an HTML `pattern` attribute (compiled with the `v` flag, where "-" must be escaped). */
export const SAFE_ID_ATTRIBUTE = "[A-Za-z0-9][A-Za-z0-9_\\-]{0,63}";
