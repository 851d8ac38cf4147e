// Coffer notes: a single-page app on the Coffer API, in plain JavaScript.
//
// Every call is cross-origin: the API answers CORS preflights for Authorization, Content-Type,
// If-Match and Idempotency-Key, and exposes ETag, so this page can do conditional writes.
"use strict";

const STORAGE_KEY = "coffer.tokens";
const API_KEY = "coffer.api";
const COLLECTION = "notes";
const PAGE_SIZE = 50;
const DEVICE_NAME = "Coffer notes (browser)";

const $ = (selector) => document.querySelector(selector);

const API = apiBase();
// Tokens live in sessionStorage: they survive a reload of this tab, not the end of the tab.
let tokens = loadTokens();
let user = null;
let nextCursor = null;
// The refresh in flight, shared by every call that got a 401 meanwhile: a refresh token is
// single-use, so two parallel refreshes of one token must not happen.
let refreshing = null;
// Record id -> ETag of the version this page last saw (from a create, get or write).
const etags = new Map();
// The second log-in step under way, in memory only: {token, wrongCodes, expiresAt}.
let challenge = null;
// Which notes the list shows: "all" (everything the user may read), "own" or "shared".
let scope = "all";

// --- configuration -------------------------------------------------------------------------

// The API base: `?api=` (kept in localStorage, so that a link from a mail, which carries no
// `?api=`, still reaches the same API), else config.js, else this page's origin.
function apiBase() {
  const fromQuery = new URLSearchParams(location.search).get("api");
  if (fromQuery) localStorage.setItem(API_KEY, fromQuery);
  const configured = window.COFFER_CONFIG && window.COFFER_CONFIG.apiBase;
  const raw = fromQuery || localStorage.getItem(API_KEY) || configured || location.origin;
  let url;
  try {
    url = new URL(raw);
  } catch {
    return null;
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") return null;
  return (url.origin + url.pathname).replace(/\/+$/, "");
}

// --- tokens --------------------------------------------------------------------------------

function loadTokens() {
  try {
    const stored = JSON.parse(sessionStorage.getItem(STORAGE_KEY));
    return stored && stored.access_token && stored.refresh_token ? stored : null;
  } catch {
    return null;
  }
}

function keepTokens(body) {
  tokens = {
    access_token: body.access_token,
    refresh_token: body.refresh_token,
    expires_at: Date.now() + body.expires_in * 1000,
  };
  sessionStorage.setItem(STORAGE_KEY, JSON.stringify(tokens));
}

function forgetTokens() {
  stopLive();
  tokens = null;
  user = null;
  etags.clear();
  sessionStorage.removeItem(STORAGE_KEY);
  forgetMfaSetup();
  hideRecoveryCodes();
}

// --- HTTP ----------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, message, problem = null) {
    super(message);
    this.status = status;
    this.problem = problem;
  }
}

function flattenErrors(errors, prefix = "") {
  const lines = [];
  for (const [key, value] of Object.entries(errors)) {
    const path = prefix ? `${prefix}.${key}` : key;
    if (Array.isArray(value)) lines.push(`${path}: ${value.join(" ")}`);
    else if (value && typeof value === "object") lines.push(...flattenErrors(value, path));
    else lines.push(`${path}: ${value}`);
  }
  return lines;
}

// An RFC 9457 problem response as an ApiError whose message is the problem's `detail`.
async function problemError(response) {
  let problem = null;
  if ((response.headers.get("Content-Type") || "").includes("json")) {
    problem = await response.json().catch(() => null);
  }
  let message = (problem && (problem.detail || problem.title)) || `HTTP ${response.status}`;
  if (problem && problem.errors && typeof problem.errors === "object") {
    message = [message, ...flattenErrors(problem.errors)].join(" ");
  }
  return new ApiError(response.status, message, problem);
}

async function send(method, path, { body, headers = {}, auth }) {
  const init = {
    method,
    headers: { Accept: "application/json", ...headers },
    credentials: "omit", // bearer tokens only; Coffer wants no cookies
    cache: "no-store",
  };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  if (auth) {
    if (!tokens) throw new ApiError(401, "You are not logged in.");
    init.headers.Authorization = `Bearer ${tokens.access_token}`;
  }
  try {
    return await fetch(API + path, init);
  } catch {
    // fetch() tells a script nothing more: the browser's console says whether CORS blocked it.
    throw new ApiError(0, `Could not reach the API at ${API} (network error or blocked by CORS).`);
  }
}

// One API call. A 401 on an authenticated call refreshes the tokens once and retries.
async function call(method, path, { body, headers, auth = true } = {}) {
  let response = await send(method, path, { body, headers, auth });
  if (response.status === 401 && auth && tokens) {
    await refreshTokens();
    response = await send(method, path, { body, headers, auth });
  }
  if (!response.ok) throw await problemError(response);
  return response;
}

function refreshTokens() {
  if (!refreshing) {
    refreshing = rotateRefreshToken().finally(() => {
      refreshing = null;
    });
  }
  return refreshing;
}

async function rotateRefreshToken() {
  if (!tokens) throw new ApiError(401, "You are not logged in.");
  try {
    const response = await call("POST", "/api/v1/sessions/refresh", {
      body: { refresh_token: tokens.refresh_token },
      auth: false,
    });
    const body = await response.json();
    keepTokens(body);
    return body;
  } catch (error) {
    if (error.status === 401) {
      forgetTokens();
      throw new ApiError(401, `Your session has ended, please log in again. (${error.message})`);
    }
    throw error;
  }
}

function newIdempotencyKey() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

// --- rendering -----------------------------------------------------------------------------

function say(message, kind = "info") {
  const status = $("#status");
  status.textContent = message;
  status.dataset.kind = kind;
}

// Which panel shows when nobody is logged in: "auth", "forgot", "reset", "verify" or "mfa".
let accountPanel = "auth";

function render() {
  const loggedIn = Boolean(tokens && user);
  const fromLink = accountPanel === "reset" || accountPanel === "verify"; // shown to anyone
  for (const name of ["auth", "forgot", "reset", "verify", "mfa"]) {
    $(`#${name}-panel`).hidden = name !== accountPanel || (loggedIn && !fromLink);
  }
  $("#app-panel").hidden = !loggedIn || fromLink;
  document.body.dataset.state = loggedIn ? "logged-in" : "logged-out";
  if (loggedIn) {
    $("#user-name").textContent = user.name || "(no name)";
    $("#user-email").textContent = `<${user.email}>`;
    $("#user-id").textContent = user.id;
    const verified = user.email_verified === true;
    $("#email-state").textContent = verified ? "confirmed" : "not confirmed";
    $("#email-state").dataset.verified = String(verified);
    $("#unverified").hidden = verified;
    $("#pending").hidden = !user.pending_email;
    $("#pending-email").textContent = user.pending_email || "";
    renderMfa(user.mfa_enabled === true);
  } else {
    $("#notes").replaceChildren();
  }
}

// What a note's badge says about the user's access to it (API.md: Sharing data).
const ACCESS_LABELS = {
  owner: "",
  write: "shared with you: may edit",
  read: "shared with you: read-only",
};

function noteItem(record) {
  const item = $("#note-template").content.firstElementChild.cloneNode(true);
  fillNote(item, record);
  return item;
}

// Show `record` in its list item, in place: an open Share panel stays open.
function fillNote(item, record) {
  const data = record.data || {};
  const done = data.done === true;
  const access = record.access || "owner";
  item.dataset.id = record.id;
  item.dataset.version = String(record.version);
  item.dataset.createdAt = record.created_at;
  item.dataset.access = access;
  item.dataset.done = String(done);
  item.classList.toggle("done", done);
  item.querySelector(".title").textContent = String(data.title ?? "(untitled)");
  const box = item.querySelector(".done");
  box.checked = done;
  box.disabled = access === "read";
  box.title = access === "read" ? "Shared with you read-only" : "";
  const badge = item.querySelector(".access");
  badge.textContent = ACCESS_LABELS[access] ?? access;
  badge.dataset.access = access;
  badge.hidden = access === "owner";
  item.querySelector(".delete").hidden = access !== "owner";
  item.querySelector(".share").hidden = access !== "owner";
}

function noteRow(id) {
  return Array.from($("#notes").children).find((item) => item.dataset.id === id) || null;
}

function showNotes(records, { append }) {
  const list = $("#notes");
  if (append) {
    // A note that a change already put on the list is updated, not listed twice.
    for (const record of records) {
      const item = noteRow(record.id);
      if (item) fillNote(item, record);
      else list.append(noteItem(record));
    }
  } else {
    list.replaceChildren(...records.map(noteItem));
  }
  showEmpty();
  $("#more").hidden = !nextCursor;
}

function showEmpty() {
  $("#empty").hidden = $("#notes").children.length > 0;
}

// A note that the list does not show yet, where `-created_at` puts it. One older than the
// last note loaded waits for "Load more", which would list it again otherwise.
function insertNote(record) {
  const list = $("#notes");
  const rows = Array.from(list.children);
  const before = rows.find((item) => item.dataset.createdAt < record.created_at);
  if (before) list.insertBefore(noteItem(record), before);
  else if (!nextCursor) list.append(noteItem(record));
  showEmpty();
}

function removeNote(item) {
  etags.delete(item.dataset.id);
  item.remove();
  showEmpty();
}

// --- actions -------------------------------------------------------------------------------

function credentials() {
  return { email: $("#email").value.trim(), password: $("#password").value };
}

async function register() {
  const body = credentials();
  const name = $("#name").value.trim();
  if (name) body.name = name;
  const response = await call("POST", "/api/v1/users", { body, auth: false });
  const created = await response.json();
  say(
    `Registered ${created.email}. You can log in now; a mail with a link and a code to ` +
      "confirm the address is on its way.",
    "ok",
  );
}

// The problem type of a correct log-in that the API refuses until the address is confirmed
// (COFFER_REQUIRE_VERIFIED_EMAIL).
const EMAIL_NOT_VERIFIED = "urn:coffer:problem:email-not-verified";
// The problem type of a correct password of an account with two-factor authentication on: it
// carries the mfa_token of the second step.
const MFA_REQUIRED = "urn:coffer:problem:mfa-required";

async function logIn() {
  let response;
  try {
    response = await call("POST", "/api/v1/sessions", {
      body: { ...credentials(), device_name: DEVICE_NAME },
      auth: false,
    });
  } catch (error) {
    const type = error.problem && error.problem.type;
    if (type === MFA_REQUIRED) {
      askForSecondFactor(error.problem.mfa_token);
      return;
    }
    if (type !== EMAIL_NOT_VERIFIED) throw error;
    askForCode(credentials().email);
    say(`${error.message} Open the link in the mail we sent, or enter its code here.`, "error");
    return;
  }
  await startSession(await response.json());
  say(`Logged in as ${user.email}.`, "ok");
}

async function startSession(issued) {
  keepTokens(issued);
  $("#password").value = "";
  await loadUser();
  await openNotes();
}

async function loadUser() {
  const response = await call("GET", "/api/v1/users/me");
  user = await response.json();
  render();
}

// The list first follows the change stream, then loads: a change made while the page loads
// arrives on the stream, so none falls between the two.
async function openNotes() {
  await startLive();
  await loadNotes();
}

async function loadNotes({ more = false } = {}) {
  const query = new URLSearchParams({
    scope,
    sort: "-created_at",
    limit: String(PAGE_SIZE),
  });
  if (more && nextCursor) query.set("cursor", nextCursor);
  // Changes that arrive while the page is on its way are applied to it once it is shown: it
  // may have been read before they were made.
  live.loading += 1;
  try {
    const response = await call("GET", `/api/v1/data/${COLLECTION}?${query}`);
    const page = await response.json();
    nextCursor = page.next_cursor;
    showNotes(page.items, { append: more });
    return page.items.length;
  } finally {
    live.loading -= 1;
    if (live.loading === 0) applyQueuedChanges();
  }
}

async function addNote() {
  const title = $("#new-title").value.trim();
  if (!title) return;
  // One key per note: a retry (after a token refresh, say) never creates it twice.
  const response = await call("POST", `/api/v1/data/${COLLECTION}`, {
    body: { data: { title, done: false } },
    headers: { "Idempotency-Key": newIdempotencyKey() },
  });
  const record = await response.json();
  rememberEtag(record.id, response);
  const item = noteRow(record.id); // the change stream may have been quicker
  if (item) fillNote(item, record);
  else $("#notes").prepend(noteItem(record));
  showEmpty();
  $("#new-title").value = "";
  say(`Added "${title}".`, "ok");
}

function rememberEtag(id, response) {
  const etag = response.headers.get("ETag");
  if (etag) etags.set(id, etag);
  else etags.delete(id); // not exposed by CORS? then fetch it again before the next write
}

// The ETag of a record: the one this page last saw, else a fresh GET of the record.
async function etagOf(id) {
  if (!etags.has(id)) {
    const response = await call("GET", `/api/v1/data/${COLLECTION}/${id}`);
    rememberEtag(id, response);
    if (!etags.has(id)) {
      throw new ApiError(0, "The API sent no readable ETag (is ETag in Access-Control-Expose-Headers?).");
    }
  }
  return etags.get(id);
}

async function conditionalWrite(item, method, body) {
  const id = item.dataset.id;
  const etag = await etagOf(id);
  try {
    return await call(method, `/api/v1/data/${COLLECTION}/${id}`, {
      body,
      headers: { "If-Match": etag },
    });
  } catch (error) {
    if (error.status === 412 || error.status === 404) {
      // Changed or deleted elsewhere: show the server's version instead of overwriting it.
      etags.delete(id);
      await loadNotes();
    }
    if (error.status === 403) throw await refused(item, method);
    throw error;
  }
}

// A 403 on a write: the note is shared with the user, who may read it but not do this (the
// owner made the grant read-only meanwhile, say). The note shows its access as it is now.
async function refused(item, method) {
  const title = item.querySelector(".title").textContent;
  try {
    const response = await call("GET", `/api/v1/data/${COLLECTION}/${item.dataset.id}`);
    rememberEtag(item.dataset.id, response);
    fillNote(item, await response.json());
  } catch (error) {
    if (error.status !== 404) throw error;
    removeNote(item); // not shared with the user any more
  }
  if (method === "DELETE") return new ApiError(403, `Only its owner can delete "${title}".`);
  return new ApiError(403, `"${title}" is shared with you read-only: you cannot change it.`);
}

async function setDone(item, done) {
  const response = await conditionalWrite(item, "PATCH", { data: { done } });
  const record = await response.json();
  rememberEtag(record.id, response);
  fillNote(item, record);
  say(`Marked "${record.data.title}" as ${done ? "done" : "not done"}.`, "ok");
}

async function deleteNote(item) {
  const title = item.querySelector(".title").textContent;
  await conditionalWrite(item, "DELETE");
  removeNote(item);
  say(`Deleted "${title}".`, "ok");
}

async function refreshNow() {
  const body = await refreshTokens();
  say(`Token refreshed; the new access token expires in ${body.expires_in} s.`, "ok");
}

async function logOut() {
  stopLive(); // before the session ends, which would end the stream anyway
  let warning = null;
  try {
    await call("DELETE", "/api/v1/sessions/current");
  } catch (error) {
    warning = error.message;
  }
  forgetTokens();
  render();
  if (warning) say(`Logged out on this page, but the server said: ${warning}`, "error");
  else say("Logged out.", "ok");
}

// --- live list: the change feed (Server-Sent Events) --------------------------------------

// After a dropped stream, the next try waits this long (ms), and longer after each failure.
const LIVE_RETRY_MS = [500, 1000, 2000, 5000, 10000, 30000];
const CHANGES = ["created", "updated", "deleted"];

// The change stream of the list's scope. An EventSource cannot send the bearer token, so each
// one opens with a single-use ticket; a spent ticket cannot reopen it, so when the stream
// drops the page gets a fresh ticket and resumes after the last event it saw.
const live = {
  source: null,
  lastEventId: null, // of the last event seen: where a reopened stream resumes
  dropped: false, // a stream was lost: the next one resumes, or the list reloads
  failures: 0, // tries in a row that failed: how long the next one waits
  timer: null,
  generation: 0, // bumped by stopLive: a stream's late callbacks then do nothing
  loading: 0, // list pages on their way: changes wait in `queued` meanwhile
  queued: [],
};

function showLive(state, text) {
  $("#live").dataset.state = state;
  $("#live").textContent = text;
}

function stopLive() {
  live.generation += 1;
  clearTimeout(live.timer);
  live.timer = null;
  if (live.source) live.source.close();
  live.source = null;
  live.lastEventId = null;
  live.dropped = false;
  live.failures = 0;
  live.queued = [];
  showLive("off", "");
}

// A new stream of the list's scope, from now on. Resolves once it is open or has failed
// (it keeps trying meanwhile): the list loads either way.
function startLive() {
  stopLive();
  showLive("connecting", "Connecting…");
  return connectLive(live.generation);
}

async function connectLive(generation) {
  try {
    await openStream(generation);
  } catch (error) {
    if (!tokens && error.status === 401 && !$("#app-panel").hidden) {
      // The session has ended (revoked, or the account deleted): the page is logged out.
      render();
      say(error.message, "error");
      return;
    }
    if (generation === live.generation) streamFailed(generation);
  }
}

async function openStream(generation) {
  const response = await call("POST", "/api/v1/stream-tickets");
  const { ticket } = await response.json();
  if (generation !== live.generation) return; // stopped (logged out, another scope) meanwhile
  const query = new URLSearchParams({ scope, ticket });
  if (live.lastEventId) query.set("last_event_id", live.lastEventId);
  const source = new EventSource(`${API}/api/v1/data/${COLLECTION}/changes?${query}`);
  live.source = source;
  for (const kind of CHANGES) {
    source.addEventListener(kind, (event) => {
      if (generation !== live.generation) return;
      live.lastEventId = event.lastEventId;
      const change = JSON.parse(event.data);
      if (change.collection !== COLLECTION) return;
      if (live.loading > 0) live.queued.push({ kind, change });
      else applyChange(kind, change);
    });
  }
  // The server could not resume after our last event (too old, say): reload, then follow.
  source.addEventListener("reset", (event) => {
    if (generation !== live.generation) return;
    live.lastEventId = event.lastEventId;
    run(null, async () => {
      await loadNotes();
      say("The list was reloaded: the live updates could not resume where they stopped.");
    });
  });
  await new Promise((resolve) => {
    source.onopen = () => {
      live.failures = 0;
      showLive("on", "Live");
      // A stream lost before its first event has no position to resume from: the new one
      // starts now, so the list reloads to show what changed in between.
      if (live.dropped && !live.lastEventId) run(null, () => loadNotes());
      live.dropped = false;
      resolve();
    };
    // Dropped (the server restarted, the network went away) or refused: EventSource would
    // retry with the spent ticket, which is refused for good (readyState CLOSED), so the page
    // closes it now and reopens it with a fresh ticket.
    source.onerror = () => {
      source.close();
      if (generation === live.generation && live.source === source) streamFailed(generation);
      resolve();
    };
  });
}

function streamFailed(generation) {
  live.source = null;
  live.dropped = true;
  const wait = LIVE_RETRY_MS[Math.min(live.failures, LIVE_RETRY_MS.length - 1)];
  live.failures += 1;
  showLive("reconnecting", "Reconnecting…");
  clearTimeout(live.timer);
  live.timer = setTimeout(() => connectLive(generation), wait);
}

// One change of a note, as the list shows it: by record id; a note that left the list's view
// (`matches: false`) or was deleted goes.
function applyChange(kind, { record, matches }) {
  const item = noteRow(record.id);
  if (kind === "deleted" || !matches) {
    if (item) removeNote(item);
    return;
  }
  if (!item) {
    insertNote(record);
    return;
  }
  if (Number(item.dataset.version) >= record.version) return; // shown already
  etags.delete(record.id); // changed elsewhere: the next write asks for the new ETag
  fillNote(item, record);
}

function applyQueuedChanges() {
  const queued = live.queued;
  live.queued = [];
  for (const { kind, change } of queued) applyChange(kind, change);
}

// --- sharing a note --------------------------------------------------------------------------

// The grants URL of a note: `grantee` is "user:<id>" or "group:<id>".
function grantsPath(item, grantee = "") {
  const base = `/api/v1/data/${COLLECTION}/${item.dataset.id}/grants`;
  return grantee ? `${base}/${encodeURIComponent(grantee).replace("%3A", ":")}` : base;
}

// A user id as typed or pasted (or "user:…", "group:…") as a grantee.
function granteeOf(text) {
  const value = text.trim();
  return /^(user|group):/.test(value) ? value : `user:${value}`;
}

function grantItem(grant) {
  const row = $("#grant-template").content.firstElementChild.cloneNode(true);
  row.dataset.grantee = grant.grantee;
  row.querySelector(".grantee-id").textContent = grant.grantee;
  row.querySelector(".grant-level").value = grant.access;
  return row;
}

async function loadGrants(item) {
  const grants = [];
  let cursor = null;
  do {
    const query = cursor ? `?${new URLSearchParams({ cursor })}` : "";
    const page = await (await call("GET", grantsPath(item) + query)).json();
    grants.push(...page.items);
    cursor = page.next_cursor;
  } while (cursor);
  item.querySelector(".grants").replaceChildren(...grants.map(grantItem));
  item.querySelector(".no-grants").hidden = grants.length > 0;
}

async function share(item, grantee, access) {
  await call("PUT", grantsPath(item, grantee), { body: { access } });
  await loadGrants(item);
  const title = item.querySelector(".title").textContent;
  const may = access === "write" ? "read and edit" : "read";
  say(`${grantee} may ${may} "${title}" now.`, "ok");
}

async function revoke(item, grantee) {
  await call("DELETE", grantsPath(item, grantee));
  await loadGrants(item);
  say(`"${item.querySelector(".title").textContent}" is no longer shared with ${grantee}.`, "ok");
}

// --- account e-mail: password reset and address confirmation ------------------------------

// The token of a mail's link: it travels in the URL fragment, which no server ever sees.
function linkToken() {
  return new URLSearchParams(location.hash.slice(1)).get("token");
}

// What the link or the by-hand form proves: {token} from a link, else {email, code}.
function proof(emailField, codeField) {
  const token = linkToken();
  if (token) return { token };
  return { email: $(emailField).value.trim(), code: $(codeField).value.trim() };
}

// The verify panel by hand: the address the mail went to, and a field for its code.
function askForCode(address) {
  leaveLink();
  $("#verify-email").value = address;
  $("#verify-code").value = "";
  showPanel("verify");
  $("#verify-code").focus();
}

function showPanel(name) {
  accountPanel = name;
  // A link's token shows no code fields; by hand, the email and the code are needed.
  const byLink = Boolean(linkToken());
  for (const part of document.querySelectorAll(".by-code")) part.hidden = byLink;
  render();
}

// Leave a link's page: forget its token, so that a reload cannot post it again.
function leaveLink() {
  const home = location.pathname.replace(/\/(reset-password|verify-email)$/, "/");
  history.replaceState(null, "", home + location.search);
}

async function requestReset() {
  const email = $("#forgot-email").value.trim();
  const response = await call("POST", "/api/v1/password-resets", { body: { email }, auth: false });
  say((await response.json()).detail, "ok");
  showPanel("reset"); // the code from the mail can be typed in here
  $("#reset-email").value = email;
}

async function setNewPassword() {
  const body = { ...proof("#reset-email", "#reset-code"), new_password: $("#new-password").value };
  await call("POST", "/api/v1/password-resets/confirm", { body, auth: false });
  $("#new-password").value = "";
  leaveLink();
  forgetTokens(); // every session of the account has ended
  showPanel("auth");
  say("Your password is changed and every session ended. Log in with the new password.", "ok");
}

async function confirmEmail() {
  const response = await call("POST", "/api/v1/email-verification", {
    body: proof("#verify-email", "#verify-code"),
    auth: false,
  });
  const confirmed = await response.json();
  leaveLink();
  $("#verify-code").value = "";
  showPanel("auth");
  const done = `Your address ${confirmed.email} is confirmed.`;
  if (!tokens) {
    $("#email").value = confirmed.email;
    say(`${done} You can log in with it now.`, "ok");
    return;
  }
  // Logged in on this tab (a link opened here, or the code typed in): show the new profile.
  // A confirmed change ends the account's other sessions; if this was one, log in again.
  try {
    await loadUser();
    await openNotes();
  } catch (error) {
    render(); // the address is confirmed all the same
    if (!tokens) $("#email").value = confirmed.email;
    say(`${done} ${error.message}`, error.status === 401 ? "ok" : "error");
    return;
  }
  say(done, "ok");
}

async function changeEmail() {
  const body = {
    email: $("#change-email").value.trim(),
    current_password: $("#change-password").value,
  };
  if (user.mfa_enabled) body.code = $("#change-code").value.trim();
  const response = await call("PATCH", "/api/v1/users/me", { body });
  $("#change-password").value = "";
  $("#change-code").value = "";
  user = await response.json();
  render();
  $("#change-email").value = "";
  $("#change-email-box").open = false;
  say(
    `A mail with a link and a code went to ${user.pending_email}; your address stays ` +
      `${user.email} until you confirm it.`,
    "ok",
  );
}

async function resendVerification() {
  const response = await call("POST", "/api/v1/users/me/email-verification");
  say((await response.json()).detail, "ok");
}

// --- two-factor authentication (TOTP) -------------------------------------------------------

// API.md: 5 wrong codes kill an mfa_token, which lives 5 minutes.
const MFA_WRONG_CODES = 5;
const MFA_TOKEN_LIFETIME_MS = 5 * 60 * 1000;
const SVG_NAMESPACE = "http://www.w3.org/2000/svg";

// The profile's two-factor state, and a code field next to the password where a change asks
// for one (step-up).
function renderMfa(enabled) {
  $("#mfa-state").textContent = enabled ? "on" : "off";
  $("#mfa-state").dataset.enabled = String(enabled);
  $("#mfa-enable-box").hidden = enabled;
  $("#mfa-disable-box").hidden = !enabled;
  for (const field of document.querySelectorAll(".step-up")) {
    field.hidden = !enabled;
    field.querySelector("input").required = enabled;
  }
}

// The log-in's second step: the password was right, the account wants a code.
function askForSecondFactor(token) {
  challenge = { token, wrongCodes: 0, expiresAt: Date.now() + MFA_TOKEN_LIFETIME_MS };
  $("#password").value = ""; // the mfa_token stands in for it now
  useRecoveryCode(false);
  showPanel("mfa");
  $("#mfa-code").focus();
  say("This account has two-factor authentication: enter the code from your authenticator app.");
}

// The second step takes a code of the app, or (switched) a recovery code.
function useRecoveryCode(recovery) {
  $("#mfa-code-label").hidden = recovery;
  $("#mfa-code").required = !recovery;
  $("#mfa-recovery-label").hidden = !recovery;
  $("#mfa-recovery-code").required = recovery;
  $("#mfa-code").value = "";
  $("#mfa-recovery-code").value = "";
  $("#mfa-switch").textContent = recovery
    ? "Use the code from the app instead"
    : "Use a recovery code instead";
  $(recovery ? "#mfa-recovery-code" : "#mfa-code").focus();
}

function endSecondStep(message) {
  challenge = null;
  $("#mfa-code").value = "";
  $("#mfa-recovery-code").value = "";
  showPanel("auth");
  $("#password").focus();
  if (message) say(message, "error");
}

async function completeLogIn() {
  if (!challenge) return endSecondStep("Log in again with your password.");
  const recovery = !$("#mfa-recovery-label").hidden;
  const body = { mfa_token: challenge.token };
  if (recovery) body.recovery_code = $("#mfa-recovery-code").value.trim();
  else body.code = $("#mfa-code").value.trim();
  let response;
  try {
    response = await call("POST", "/api/v1/sessions/mfa", { body, auth: false });
  } catch (error) {
    if (error.status !== 401) throw error;
    // The API answers a wrong code and a dead mfa_token alike; the page knows when it dies.
    challenge.wrongCodes += 1;
    if (challenge.wrongCodes >= MFA_WRONG_CODES) {
      const why = `That was the ${MFA_WRONG_CODES}th wrong code`;
      return endSecondStep(`${error.message} ${why}: log in again with your password.`);
    }
    if (Date.now() >= challenge.expiresAt) {
      const why = "The sign-in took too long";
      return endSecondStep(`${error.message} ${why}: log in again with your password.`);
    }
    const field = recovery ? "#mfa-recovery-code" : "#mfa-code";
    $(field).value = "";
    $(field).focus();
    const left = MFA_WRONG_CODES - challenge.wrongCodes;
    const tries = `${left} ${left === 1 ? "try" : "tries"} left`;
    throw new ApiError(401, `${error.message} Try again (${tries}).`);
  }
  challenge = null;
  $("#mfa-code").value = "";
  $("#mfa-recovery-code").value = "";
  showPanel("auth"); // what shows after the next log-out
  await startSession(await response.json());
  const spent = recovery ? " That recovery code is used up now." : "";
  say(`Logged in as ${user.email}.${spent}`, "ok");
}

// The API's SVG QR code as an image: an <img> runs no script and loads nothing that an SVG
// names, and the markup never becomes part of this page. An image needs the SVG namespace.
function svgImage(svg) {
  const head = svg.slice(0, svg.indexOf(">"));
  const named = /\sxmlns=/.test(head)
    ? svg
    : svg.replace(/^<svg\b/, `<svg xmlns="${SVG_NAMESPACE}"`);
  return `data:image/svg+xml;charset=utf-8,${encodeURIComponent(named)}`;
}

async function startEnrolment() {
  const response = await call("POST", "/api/v1/users/me/mfa/totp", {
    body: { password: $("#mfa-enrol-password").value },
  });
  $("#mfa-enrol-password").value = "";
  const factor = await response.json();
  $("#mfa-qr").src = svgImage(factor.qr_svg);
  // In groups of four, as authenticator apps take it typed.
  $("#mfa-secret").textContent = factor.secret.match(/.{1,4}/g).join(" ");
  const link = $("#mfa-uri");
  const scannable = factor.otpauth_uri.startsWith("otpauth://");
  link.hidden = !scannable;
  link.href = scannable ? factor.otpauth_uri : "#";
  $("#mfa-enrol-form").hidden = true;
  $("#mfa-setup").hidden = false;
  $("#mfa-confirm-code").value = "";
  $("#mfa-confirm-code").focus();
  say("Add the account to your authenticator app, then enter the code it shows.");
}

async function confirmEnrolment() {
  const response = await call("POST", "/api/v1/users/me/mfa/totp/confirm", {
    body: { code: $("#mfa-confirm-code").value.trim() },
  });
  const { recovery_codes: codes } = await response.json();
  forgetMfaSetup();
  $("#mfa-enable-box").open = false;
  showRecoveryCodes(codes);
  await loadUser();
  say(
    "Two-factor authentication is on: log-in asks for a code of your app from now on. " +
      "Save your recovery codes now, they are shown only this once.",
    "ok",
  );
}

// The secret and its QR code: shown until the factor is confirmed, then forgotten.
function forgetMfaSetup() {
  $("#mfa-qr").removeAttribute("src");
  $("#mfa-secret").textContent = "";
  $("#mfa-uri").href = "#";
  $("#mfa-confirm-code").value = "";
  $("#mfa-setup").hidden = true;
  $("#mfa-enrol-form").hidden = false;
}

function showRecoveryCodes(codes) {
  const items = codes.map((code) => {
    const item = document.createElement("li");
    item.textContent = code;
    return item;
  });
  $("#recovery-codes").replaceChildren(...items);
  $("#recovery-box").hidden = false;
}

function hideRecoveryCodes() {
  $("#recovery-codes").replaceChildren();
  $("#recovery-box").hidden = true;
}

async function disableMfa() {
  await call("DELETE", "/api/v1/users/me/mfa/totp", {
    body: { password: $("#mfa-disable-password").value, code: $("#mfa-disable-code").value.trim() },
  });
  $("#mfa-disable-password").value = "";
  $("#mfa-disable-code").value = "";
  $("#mfa-disable-box").open = false;
  hideRecoveryCodes();
  await loadUser();
  say("Two-factor authentication is off: log-in asks for the password only.", "ok");
}

// --- wiring --------------------------------------------------------------------------------

// Run one user action: its button is disabled meanwhile and any error ends up in #status.
async function run(button, action) {
  if (button) button.disabled = true;
  try {
    await action();
  } catch (error) {
    if (!(error instanceof ApiError)) console.error(error);
    render(); // the session may have ended meanwhile
    say(error.message, "error");
  } finally {
    if (button) button.disabled = false;
  }
}

function wire() {
  $("#auth-form").addEventListener("submit", (event) => {
    event.preventDefault();
    run($("#login"), logIn);
  });
  $("#register").addEventListener("click", () => {
    if ($("#auth-form").reportValidity()) run($("#register"), register);
  });
  $("#forgot").addEventListener("click", () => showPanel("forgot"));
  for (const back of document.querySelectorAll(".back")) {
    back.addEventListener("click", () => {
      leaveLink();
      showPanel("auth");
    });
  }
  $("#forgot-form").addEventListener("submit", (event) => {
    event.preventDefault();
    run($("#send-reset"), requestReset);
  });
  $("#reset-form").addEventListener("submit", (event) => {
    event.preventDefault();
    run($("#set-password"), setNewPassword);
  });
  $("#verify-form").addEventListener("submit", (event) => {
    event.preventDefault();
    run($("#confirm-email"), confirmEmail);
  });
  $("#resend-verification").addEventListener("click", () =>
    run($("#resend-verification"), resendVerification),
  );
  $("#enter-code").addEventListener("click", () => {
    askForCode(user.email);
    say(`Enter the 6-digit code from the mail sent to ${user.email}.`);
  });
  $("#enter-change-code").addEventListener("click", () => {
    askForCode(user.pending_email);
    say(`Enter the 6-digit code from the mail sent to ${user.pending_email}.`);
  });
  $("#change-email-form").addEventListener("submit", (event) => {
    event.preventDefault();
    run($("#send-change"), changeEmail);
  });
  $("#mfa-form").addEventListener("submit", (event) => {
    event.preventDefault();
    run($("#mfa-verify"), completeLogIn);
  });
  $("#mfa-switch").addEventListener("click", () =>
    useRecoveryCode($("#mfa-recovery-label").hidden),
  );
  $("#mfa-cancel").addEventListener("click", () => {
    endSecondStep();
    say("Log in or register.");
  });
  $("#mfa-enrol-form").addEventListener("submit", (event) => {
    event.preventDefault();
    run($("#mfa-enrol"), startEnrolment);
  });
  $("#mfa-confirm-form").addEventListener("submit", (event) => {
    event.preventDefault();
    run($("#mfa-confirm"), confirmEnrolment);
  });
  $("#recovery-saved").addEventListener("click", () => {
    hideRecoveryCodes();
    say("Keep the recovery codes safe: each logs you in once.", "ok");
  });
  $("#mfa-disable-form").addEventListener("submit", (event) => {
    event.preventDefault();
    run($("#mfa-disable"), disableMfa);
  });
  $("#note-form").addEventListener("submit", (event) => {
    event.preventDefault();
    run($("#add"), addNote);
  });
  $("#reload").addEventListener("click", () =>
    run($("#reload"), async () => {
      const count = await loadNotes();
      say(`Loaded ${count} note${count === 1 ? "" : "s"}.`, "ok");
    }),
  );
  $("#more").addEventListener("click", () => run($("#more"), () => loadNotes({ more: true })));
  $("#refresh").addEventListener("click", () => run($("#refresh"), refreshNow));
  $("#logout").addEventListener("click", () => run($("#logout"), logOut));
  $("#scope").addEventListener("change", () =>
    run($("#scope"), async () => {
      scope = $("#scope").value;
      await openNotes();
    }),
  );
  $("#notes").addEventListener("change", (event) => {
    const item = event.target.closest("#notes > li");
    if (event.target.matches(".grant-level")) {
      const level = event.target;
      run(level, () => share(item, level.closest("li").dataset.grantee, level.value));
      return;
    }
    if (!event.target.matches(".done")) return;
    const box = event.target;
    box.disabled = true;
    run(null, async () => {
      try {
        await setDone(item, box.checked);
      } catch (error) {
        box.checked = item.dataset.done === "true"; // as the page last saw it
        throw error;
      } finally {
        box.disabled = item.dataset.access === "read";
      }
    });
  });
  $("#notes").addEventListener("click", (event) => {
    if (event.target.matches(".delete")) {
      run(event.target, () => deleteNote(event.target.closest("#notes > li")));
    } else if (event.target.matches(".revoke")) {
      const button = event.target;
      run(button, () =>
        revoke(button.closest("#notes > li"), button.closest("li").dataset.grantee),
      );
    }
  });
  $("#notes").addEventListener("submit", (event) => {
    if (!event.target.matches(".share-form")) return;
    event.preventDefault();
    const form = event.target;
    const grantee = granteeOf(form.querySelector(".grantee").value);
    const access = form.querySelector(".grant-access").value;
    run(form.querySelector(".grant"), async () => {
      await share(form.closest("#notes > li"), grantee, access);
      form.querySelector(".grantee").value = "";
    });
  });
  // A note's Share panel lists its grants when it opens ("toggle" does not bubble).
  $("#notes").addEventListener(
    "toggle",
    (event) => {
      if (!event.target.matches(".share") || !event.target.open) return;
      run(null, () => loadGrants(event.target.closest("#notes > li")));
    },
    true,
  );
}

// A mail's link opens /reset-password#token=… or /verify-email#token=…; the page waits for a
// press of its button before it spends the token. Whether this is such a page.
function showLinkPage() {
  if (location.pathname.endsWith("/reset-password")) showPanel("reset");
  else if (location.pathname.endsWith("/verify-email")) showPanel("verify");
  else return false;
  say(accountPanel === "reset" ? "Choose a new password." : "Confirm your address.");
  return true;
}

function start() {
  wire();
  if (!API) {
    $("#api-base").textContent = "(invalid)";
    say("The API base URL is not a valid http(s) URL: set ?api= or config.js.", "error");
    return;
  }
  $("#api-base").textContent = API;
  if (showLinkPage()) return;
  if (!tokens) {
    render();
    say("Log in or register.");
    return;
  }
  run(null, async () => {
    await loadUser();
    await openNotes();
    say(`Welcome back, ${user.email}.`, "ok");
  });
}

start();
