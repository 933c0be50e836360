// The commander's console: login, the wall mimic, sources, layouts, history, devices and
// the connection status. It uses only the public WebSocket API and the preview URLs,
// like any integrator's client would.

import { ApiError, CLOSE, Connection, LoginError } from "./api.js";
import { applyStatic, currentLang, setLang, t, timeText } from "./i18n.js";
import { Mimic, el } from "./mimic.js";
import { cryptoAvailable } from "./scram.js";
import { SourceTree } from "./sources.js";
import { LayoutsPanel, HistoryPanel } from "./layouts.js";
import { DevicesPanel } from "./devices.js";
import { ConferencePanel } from "./conference.js";
import { PtzPanel } from "./ptz.js";

const TOKEN_KEY = "wallctl.session";
const ACCOUNT_KEY = "wallctl.account";
// Capped low: a commander waits on this, and the jitter spreads a room of consoles.
const BACKOFF_MS = [500, 1000, 2000, 3000, 5000];
const PREVIEW_FPS = 5;

const $ = (sel) => document.querySelector(sel);

class App {
  constructor() {
    this.config = null;
    this.conn = null;
    this.auth = null; // {account, keys} or {token}: how to log in again after a drop
    this.identity = null;
    this.walls = [];
    this.wallId = null;
    this.mainWall = null;
    this.states = new Map();
    this.sources = new Map();
    this.phases = new Map();
    this.lastChange = null;
    this.attempt = 0;
    this.retryTimer = null;
    this.loggingOut = false;
    this.snap = true;
    this.multi = false;
  }

  async boot() {
    setLang(currentLang());
    $("#lang").addEventListener("click", () => this.toggleLang());
    $("#login-lang").addEventListener("click", () => this.toggleLang());
    $("#login-form").addEventListener("submit", (e) => {
      e.preventDefault();
      this.loginWithPassword();
    });
    $("#logout").addEventListener("click", () => this.logout());
    $("#wall-select").addEventListener("change", (e) => this.showWall(e.target.value));
    this.toolbar();
    this.tabs();
    this.mimic = new Mimic($("#mimic-wrap"), {
      canEdit: () => this.canEdit(),
      snap: () => this.snap,
      multi: () => this.multi,
      onSelect: (ids) => this.selectionChanged(ids),
      act: (m, p) => this.act(m, p),
      sourceName: (id) => (this.sources.get(id) || { name: id }).name,
      sourcePhase: (id) => this.phases.get(id) || null,
    });
    this.sourceTree = new SourceTree($("#sources"), this);
    this.layouts = new LayoutsPanel($("#panel-layouts"), this);
    this.history = new HistoryPanel($("#panel-history"), this);
    this.devices = new DevicesPanel($("#panel-devices"), this);
    this.conference = new ConferencePanel($("#panel-conference"), this);
    this.ptz = new PtzPanel($("#ptz-panel"), this);
    try {
      const r = await fetch("/console/config.json", { cache: "no-store" });
      this.config = await r.json();
    } catch {
      this.showLogin(t("login.unreachable"));
      return;
    }
    document.title = `${this.config.site || ""} · ${t("app.title")}`;
    $("#site").textContent = this.config.site || t("app.title");
    $("#login-site").textContent = this.config.site || "";
    const token = this.storedToken();
    if (token) {
      try {
        await this.connect({ token });
        return;
      } catch (e) {
        if (e instanceof LoginError && e.code === CLOSE.AUTH_FAILED) {
          this.forgetToken();
          this.showLogin(t("login.expired"));
          return;
        }
        // The daemon is not reachable now (restarting?): keep the session and retry.
        this.showLogin(t("login.unreachable"));
        this.auth = { token };
        this.scheduleReconnect();
        return;
      }
    }
    this.showLogin("");
  }

  apiUrl() {
    const a = this.config.api;
    const host = location.hostname.includes(":") ? `[${location.hostname}]` : location.hostname;
    return `${a.scheme}://${host}:${a.port}${a.path}`;
  }

  subscriptions() {
    const wanted = ["wall", "layout", "device", "source", "conference"];
    return wanted.filter((c) => (this.config.api.categories || []).includes(c));
  }

  // --- login, logout, reconnect ---------------------------------------------------------

  showLogin(message) {
    document.body.dataset.view = "login";
    $("#login").hidden = false;
    $("#app").hidden = true;
    $("#login-error").textContent = message || "";
    let acc = null;
    try { acc = localStorage.getItem(ACCOUNT_KEY); } catch { /* storage off */ }
    if (acc && !$("#account").value) $("#account").value = acc;
    if (!cryptoAvailable()) $("#login-error").textContent = t("login.insecure");
    ($("#account").value ? $("#password") : $("#account")).focus();
  }

  async loginWithPassword() {
    const account = $("#account").value.trim();
    const password = $("#password").value;
    if (!account || !password) return;
    clearTimeout(this.retryTimer); // a session retrying in the background gives way
    this.auth = null;
    this.banner("", "");
    if (!cryptoAvailable()) {
      $("#login-error").textContent = t("login.insecure");
      return;
    }
    const btn = $("#login-submit");
    btn.disabled = true;
    $("#login-error").textContent = t("login.busy");
    try {
      await this.connect({ account, password });
      try { localStorage.setItem(ACCOUNT_KEY, account); } catch { /* optional */ }
      $("#password").value = "";
    } catch (e) {
      $("#login-error").textContent = this.loginErrorText(e);
    } finally {
      btn.disabled = false;
    }
  }

  loginErrorText(e) {
    if (e instanceof LoginError) {
      if (e.code === CLOSE.AUTH_FAILED) return t("login.failed");
      if (e.code === CLOSE.THROTTLED) return t("login.throttled");
      if (e.code === "impostor") return t("login.impostor");
      if (typeof e.code === "number" && e.code >= 4000) return e.message;
    }
    return t("login.unreachable");
  }

  async connect(auth) {
    const conn = new Connection(this.apiUrl());
    conn.onEvent = (ev) => this.event(ev);
    conn.onClose = (code, reason, byUs) => this.closed(conn, code, reason, byUs);
    const ident = await conn.open(auth, this.subscriptions());
    this.conn = conn;
    this.identity = ident.identity;
    // How to log in again after a drop: the token, and the SCRAM keys (memory only) when
    // this page logged in with the password, for when the token has expired meanwhile.
    this.auth = auth.token
      ? { ...(this.auth || {}), token: auth.token }
      : { account: auth.account, keys: conn.keys };
    window.wallctl = this; // for integrators poking at the page (and the browser tests)
    await this.afterLogin(!auth.token);
    return ident;
  }

  async afterLogin(fresh) {
    document.body.dataset.view = "app";
    document.body.classList.toggle("readonly", !this.canEdit());
    $("#login-error").textContent = "";
    // Whatever the page knew may be older than the server's truth (a restart, a restore
    // while cut off): start again from what the server says now.
    this.states.clear();
    $("#login").hidden = true;
    $("#app").hidden = false;
    $("#who").textContent = `${this.identity.display_name || this.identity.account} · ${t(`role.${this.identity.role}`)}`;
    $("#readonly-note").hidden = this.canEdit();
    const mechanisms = this.conn.hello.authentication.mechanisms || [];
    if (fresh && mechanisms.includes("token")) {
      // A session token lets a reload keep the session without storing anything
      // password-equivalent; it dies on logout and expiry.
      try {
        const tok = await this.conn.call("session.token");
        sessionStorage.setItem(TOKEN_KEY, JSON.stringify(tok));
        this.auth = { ...this.auth, token: tok.token };
      } catch { /* older server: reloads ask for the password again */ }
    }
    await this.loadAll();
    this.setConnected(true);
    // Everything is drawn: what a script driving the page (or a test) waits for.
    document.body.dataset.ready = "true";
  }

  storedToken() {
    try {
      const tok = JSON.parse(sessionStorage.getItem(TOKEN_KEY) || "null");
      if (tok && tok.token && (!tok.expires || tok.expires * 1000 > Date.now())) return tok.token;
    } catch { /* unreadable: ignore */ }
    return null;
  }

  forgetToken() {
    try { sessionStorage.removeItem(TOKEN_KEY); } catch { /* nothing to forget */ }
  }

  async logout() {
    this.loggingOut = true;
    clearTimeout(this.retryTimer);
    if (this.conn && this.conn.isOpen && (this.conn.hello.authentication.mechanisms || []).includes("token")) {
      try { await this.conn.call("session.logout"); } catch { /* revoked or gone either way */ }
    }
    this.forgetToken();
    this.auth = null;
    if (this.conn) this.conn.close();
    this.conn = null;
    this.loggingOut = false;
    this.setConnected(false, true);
    this.showLogin("");
  }

  closed(conn, code, reason, byUs) {
    if (conn !== this.conn || byUs || this.loggingOut) return;
    this.setConnected(false);
    if (code === CLOSE.AUTH_FAILED) {
      this.forgetToken();
      this.showLogin(t("login.expired"));
      return;
    }
    if (code === CLOSE.KICKED) {
      // An administrator ended this session: coming back by itself would defeat that.
      this.forgetToken();
      this.auth = null;
      this.showLogin(`${t("login.kicked")}${reason ? `: ${reason}` : ""}`);
      return;
    }
    this.scheduleReconnect();
  }

  scheduleReconnect() {
    clearTimeout(this.retryTimer);
    const base = BACKOFF_MS[Math.min(this.attempt, BACKOFF_MS.length - 1)];
    const delay = Math.round(base * (0.75 + Math.random() * 0.5));
    this.attempt += 1;
    this.banner(`${t("conn.lost")} ${t("conn.retry", { s: (delay / 1000).toFixed(1), n: this.attempt })}`, "down");
    this.retryTimer = setTimeout(() => this.reconnect(), delay);
  }

  async reconnect() {
    if (!this.auth) return;
    const { token, account, keys } = this.auth;
    try {
      try {
        await this.connect(token ? { token } : { account, keys });
      } catch (e) {
        // An expired or revoked token: the keys of this page's own login still work.
        if (!(token && keys && e instanceof LoginError && e.code === CLOSE.AUTH_FAILED)) throw e;
        this.forgetToken();
        this.auth = { account, keys };
        await this.connect({ account, keys });
      }
      this.attempt = 0;
      this.banner(t("conn.back"), "ok", 3000);
    } catch (e) {
      if (e instanceof LoginError && (e.code === CLOSE.AUTH_FAILED || e.code === "need_password")) {
        this.forgetToken();
        this.auth = null;
        this.banner("", "");
        this.showLogin(t("login.expired"));
        return;
      }
      this.scheduleReconnect();
    }
  }

  setConnected(up, quiet = false) {
    if (!up) document.body.dataset.ready = "false";
    const dot = $("#conn");
    dot.dataset.state = up ? "up" : "down";
    dot.textContent = up ? t("conn.ok") : t("conn.down");
    document.body.classList.toggle("offline", !up && !quiet);
  }

  banner(text, kind, hideAfterMs) {
    const b = $("#banner");
    clearTimeout(this._bannerTimer);
    b.textContent = text;
    b.dataset.kind = kind || "";
    b.hidden = !text;
    if (hideAfterMs) this._bannerTimer = setTimeout(() => { b.hidden = true; }, hideAfterMs);
  }

  toast(text, kind = "error") {
    const box = $("#toasts");
    const d = el("div", `toast ${kind}`);
    d.textContent = text;
    box.append(d);
    setTimeout(() => d.remove(), 4000);
  }

  toggleLang() {
    setLang(currentLang() === "zh-CN" ? "en" : "zh-CN");
    if (this.identity) {
      $("#who").textContent = `${this.identity.display_name || this.identity.account} · ${t(`role.${this.identity.role}`)}`;
      this.sourceTree.render();
      this.layouts.render();
      this.history.render();
      this.devices.render();
      this.conference.render();
      this.ptz.render();
      this.mimic.relabel();
      this.selectionChanged([...this.mimic.selected]);
      this.showLastChange();
      this.setConnected(Boolean(this.conn && this.conn.isOpen));
      const st = this.states.get(this.wallId);
      if (st) $("#revision").textContent = t("status.revision", { r: st.revision });
    }
  }

  // --- data ------------------------------------------------------------------------------

  canEdit() {
    return Boolean(this.identity) && this.identity.role !== "viewer";
  }

  wallParam() {
    return this.wallId && this.wallId !== this.mainWall ? { wall: this.wallId } : {};
  }

  async loadAll() {
    const conn = this.conn;
    const [walls, sources] = await Promise.all([conn.call("wall.list"), conn.call("source.list")]);
    this.walls = walls.walls;
    this.mainWall = walls.main;
    if (!this.wallId || !this.walls.some((w) => w.id === this.wallId)) this.wallId = walls.main;
    this.sources = new Map(sources.sources.map((s) => [s.id, s]));
    const sel = $("#wall-select");
    sel.innerHTML = "";
    for (const w of this.walls) {
      const o = el("option");
      o.value = w.id;
      o.textContent = w.name || w.id;
      sel.append(o);
    }
    sel.value = this.wallId;
    sel.hidden = this.walls.length < 2;
    const only = this.walls.find((w) => w.id === this.wallId);
    $("#wall-name").textContent = this.walls.length < 2 && only ? only.name || only.id : "";
    try {
      // Phases now; source.state events keep them current (absent without the render
      // pipeline: then no status is shown).
      const stats = await conn.call("source.stats");
      this.phases = new Map(stats.sources.map((x) => [x.source, x.phase]));
    } catch {
      this.phases = new Map();
    }
    this.ptz.cameras = null; // cameras may have changed while away
    this.sourceTree.setSources([...this.sources.values()]);
    await this.showWall(this.wallId);
    await Promise.all([this.devices.load(), this.conference.load()]);
  }

  async reloadSources() {
    try {
      const sources = await this.conn.call("source.list");
      this.sources = new Map(sources.sources.map((s) => [s.id, s]));
      this.sourceTree.setSources([...this.sources.values()]);
      this.mimic.relabel();
    } catch {
      // Connection lost: the reconnect's loadAll reads the list again.
    }
  }

  async showWall(id) {
    if (id !== this.wallId) {
      this.lastChange = null;
      this.showLastChange();
    }
    this.wallId = id;
    const info = await this.conn.call("wall.get", this.wallParam());
    this.mimic.setWall(info.wall);
    this.mimic.select([]);
    this.applyState(info.state);
    const width = Math.min(1280, Math.max(320, Math.round(this.mimic.stage.getBoundingClientRect().width)));
    this.mimic.setPreview(this.config.preview ? `/preview/${encodeURIComponent(id)}.mjpeg?width=${width}&fps=${PREVIEW_FPS}` : null);
    await Promise.all([this.layouts.load(), this.history.load()]);
  }

  applyState(state) {
    const known = this.states.get(state.wall);
    if (known && known.revision > state.revision) return; // an answer overtaken by an event
    this.states.set(state.wall, state);
    if (state.wall === this.wallId) {
      this.mimic.setState(state);
      $("#revision").textContent = t("status.revision", { r: state.revision });
    }
  }

  event(ev) {
    switch (ev.type) {
      case "snapshot":
        for (const w of ev.data.walls) this.applyState(w.state);
        if (this._resyncing) {
          this._resyncing = false;
          this.banner(t("conn.resync"), "ok", 3000);
          this.layouts.load();
          this.history.load();
        }
        break;
      case "resync":
        this._resyncing = true;
        this.states.clear(); // the snapshot that follows is the truth, whatever revision
        break;
      case "wall.changed":
        this.applyState(ev.data.state);
        if (ev.wall === this.wallId) {
          this.lastChange = { origin: ev.origin, ts: ev.data.ts, action: ev.data.action };
          this.showLastChange();
          this.history.changed();
        }
        break;
      case "layout.saved":
      case "layout.deleted":
        if (!ev.wall || ev.wall === this.wallId) this.layouts.load();
        break;
      case "source.added":
      case "source.removed":
        // A terminal registered or removed while the console is open: refresh the picker.
        this.reloadSources();
        break;
      case "source.state": {
        const d = ev.data || {};
        const id = d.source || d.id;
        if (id && d.phase) {
          this.phases.set(id, d.phase);
          this.mimic.relabel();
          this.sourceTree.phaseChanged(id);
        }
        break;
      }
      default:
        if (ev.category === "device") this.devices.event(ev);
        else if (ev.category === "conference") this.conference.event(ev);
    }
  }

  showLastChange() {
    const c = this.lastChange;
    const box = $("#last-change");
    if (!c) {
      box.textContent = "";
      return;
    }
    const mine = c.origin && this.conn && c.origin.session === this.conn.identified.session;
    const who = mine ? t("status.you") : (c.origin && c.origin.identity) || "?";
    const key = `act.${c.action}`;
    const what = t(key) === key ? c.action : t(key);
    box.textContent = t("status.changed", { who, when: timeText(c.ts), what });
    box.classList.toggle("other", !mine);
  }

  // --- acting --------------------------------------------------------------------------

  async act(method, params) {
    if (!this.canEdit()) return null;
    try {
      return await this.conn.call(method, { ...this.wallParam(), ...params });
    } catch (e) {
      this.error(e);
      return null;
    }
  }

  error(e) {
    if (e instanceof ApiError) {
      const key = `err.${e.code}`;
      const head = t(key) === key ? e.code : t(key);
      this.toast(e.code === "device_error" || e.code === "invalid_field" ? `${head}: ${e.message}` : head);
    } else {
      this.toast(String(e && e.message ? e.message : e));
    }
  }

  toolbar() {
    const bind = (id, fn) => $(id).addEventListener("click", fn);
    const one = () => [...this.mimic.selected][0];
    bind("#t-close", async () => {
      const ids = [...this.mimic.selected];
      if (ids.length > 1) {
        await this.batch(ids.map((w, i) => ({ id: `c${i}`, method: "window.close", params: { ...this.wallParam(), window: w } })));
      } else if (ids.length) {
        await this.act("window.close", { window: ids[0] });
      }
    });
    bind("#t-raise", () => one() && this.act("window.raise", { window: one() }));
    bind("#t-full", () => one() && this.act("window.fullscreen", { window: one(), on: true, target: "wall" }));
    bind("#t-tile", () => one() && this.act("window.fullscreen", { window: one(), on: true, target: "tile" }));
    bind("#t-back", () => one() && this.act("window.fullscreen", { window: one(), on: false }));
    bind("#t-clear", () => one() && this.act("window.set_source", { window: one(), source: null }));
    bind("#t-swap", () => {
      const ids = [...this.mimic.selected];
      if (ids.length === 2) this.act("window.swap", { a: ids[0], b: ids[1] });
    });
    const snap = $("#t-snap");
    snap.setAttribute("aria-pressed", String(this.snap));
    snap.addEventListener("click", () => {
      this.snap = !this.snap;
      snap.setAttribute("aria-pressed", String(this.snap));
    });
    // On a laptop: Escape drops the selection, Delete closes the selected windows.
    document.addEventListener("keydown", (e) => {
      if (document.body.dataset.view !== "app" || $("#dialog").open) return;
      if (e.target.closest && e.target.closest("input, select, textarea")) return;
      if (e.key === "Escape") this.mimic.select([]);
      else if (e.key === "Delete" && this.mimic.selected.size) $("#t-close").click();
    });
    const multi = $("#t-multi");
    multi.addEventListener("click", () => {
      this.multi = !this.multi;
      multi.setAttribute("aria-pressed", String(this.multi));
    });
  }

  async batch(requests) {
    if (!this.canEdit()) return null;
    try {
      return await this.conn.batch(requests, "atomic");
    } catch (e) {
      this.error(e);
      return null;
    }
  }

  selectionChanged(ids) {
    const n = ids.length;
    const w = n === 1 ? this.mimic.window(ids[0]) : null;
    $("#sel-info").textContent = n ? t("tool.selected", { n }) : t("tool.none");
    const ro = !this.canEdit();
    $("#t-close").disabled = ro || n === 0;
    for (const id of ["#t-raise", "#t-full", "#t-tile", "#t-clear"]) $(id).disabled = ro || n !== 1;
    $("#t-back").disabled = ro || !(w && w.restore);
    $("#t-swap").disabled = ro || n !== 2;
    $("#t-snap").disabled = ro;
    $("#t-multi").disabled = false;
    if (this.ptz) this.ptz.selectionChanged(ids);
  }

  tabs() {
    for (const b of document.querySelectorAll("[data-tab]")) {
      b.addEventListener("click", () => {
        for (const x of document.querySelectorAll("[data-tab]")) x.setAttribute("aria-selected", String(x === b));
        for (const p of document.querySelectorAll(".panel")) p.hidden = p.id !== `panel-${b.dataset.tab}`;
        if (b.dataset.tab === "history") this.history.load();
      });
    }
  }

  // A modal question; resolves to the typed text (prompt), true (confirm) or null.
  ask(message, { input = null, danger = false } = {}) {
    const dlg = $("#dialog");
    $("#dialog-text").textContent = message;
    const field = $("#dialog-input");
    field.hidden = input === null;
    field.value = input || "";
    $("#dialog-ok").classList.toggle("danger", danger);
    applyStatic(dlg);
    return new Promise((resolve) => {
      const done = (ok) => {
        dlg.close();
        $("#dialog-ok").onclick = null;
        $("#dialog-cancel").onclick = null;
        if (!ok) resolve(null);
        else resolve(input === null ? true : field.value.trim() || null);
      };
      $("#dialog-ok").onclick = () => done(true);
      $("#dialog-cancel").onclick = () => done(false);
      dlg.oncancel = () => done(false);
      dlg.showModal();
      (input === null ? $("#dialog-ok") : field).focus();
    });
  }
}

const app = new App();
app.boot();
