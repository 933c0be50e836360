// One connection to the wallctl control API (docs/api.md): hello, identify (SCRAM-SHA-256
// or a session token), then requests answered by responses and events pushed in order.
// The JavaScript sibling of wallctl/client.py; it knows nothing of the page.

import { authMessage, b64decode, deriveKeys, makeNonce, proofFor, sameBytes } from "./scram.js";

export const PROTOCOL_VERSION = 1;
const MAX_ITERATIONS = 10_000_000;
const ANSWER_TIMEOUT_MS = 15000;

// Close codes of the protocol (docs/api.md "Close codes").
export const CLOSE = {
  AUTH_FAILED: 4005,
  THROTTLED: 4010,
  IDENTIFY_TIMEOUT: 4011,
  KICKED: 4012,
  UNSUPPORTED: 4006,
};

export class ApiError extends Error {
  constructor(err) {
    super(err.message || err.code);
    this.code = err.code;
    this.field = err.field || null;
    this.retryable = Boolean(err.retryable);
  }
}

// The handshake failed: `code` is the close code (4005 wrong login, 4010 throttled...)
// or a word for what went wrong on our side.
export class LoginError extends Error {
  constructor(code, reason) {
    super(reason || String(code));
    this.code = code;
  }
}

export class Connection {
  constructor(url) {
    this.url = url;
    this.ws = null;
    this.hello = null;
    this.identified = null;
    this.keys = null; // ClientKey/ServerKey of the last SCRAM login (memory only)
    this.onEvent = () => {};
    this.onClose = () => {};
    this._next = 1;
    this._pending = new Map();
    this._waiter = null;
    this._closedByUs = false;
  }

  // Connect and identify. auth: {token} | {account, password} | {account, keys}.
  async open(auth, subscriptions) {
    const ws = new WebSocket(this.url);
    this.ws = ws;
    const inbox = [];
    let wake = null;
    let closed = null;
    ws.onmessage = (ev) => {
      if (this.identified) return this._dispatch(ev.data);
      inbox.push(ev.data);
      if (wake) wake();
    };
    ws.onclose = (ev) => {
      closed = { code: ev.code, reason: ev.reason };
      if (wake) wake();
      if (this.identified) this._closed(ev.code, ev.reason);
    };
    const next = async () => {
      const timer = setTimeout(() => wake && wake(), ANSWER_TIMEOUT_MS);
      try {
        while (!inbox.length) {
          if (closed) throw new LoginError(closed.code || "closed", closed.reason || "connection closed");
          await new Promise((r) => { wake = r; });
          wake = null;
          if (!inbox.length && !closed) throw new LoginError("timeout", "the server did not answer");
        }
      } finally {
        clearTimeout(timer);
      }
      return JSON.parse(inbox.shift());
    };
    try {
      const hello = await next();
      if (hello.op !== "hello") throw new LoginError("protocol", `expected hello, got ${hello.op}`);
      this.hello = hello;
      const mechanisms = (hello.authentication && hello.authentication.mechanisms) || [];
      const identify = { op: "identify", protocol_version: PROTOCOL_VERSION, subscriptions };
      let expected = null;
      if (auth.token) {
        if (!mechanisms.includes("token")) throw new LoginError("no_token", "the server takes no session tokens");
        identify.token = auth.token;
        ws.send(JSON.stringify(identify));
      } else {
        const nonce = makeNonce();
        identify.account = auth.account;
        identify.client_nonce = nonce;
        ws.send(JSON.stringify(identify));
        const ch = await next();
        if (ch.op !== "challenge") throw new LoginError("protocol", `expected challenge, got ${ch.op}`);
        const its = ch.iterations;
        if (!String(ch.nonce).startsWith(nonce) || !(its >= 1 && its <= MAX_ITERATIONS)) {
          throw new LoginError("protocol", "the server's challenge is not valid SCRAM");
        }
        let keys = auth.keys;
        if (!keys || keys.salt !== ch.salt || keys.iterations !== its) {
          if (auth.password == null) throw new LoginError("need_password", "password needed");
          keys = await deriveKeys(auth.password, ch.salt, its);
        }
        const p = await proofFor(keys, authMessage(auth.account, nonce, ch));
        ws.send(JSON.stringify({ op: "identify_proof", proof: p.proof }));
        expected = p.serverSignature;
        this.keys = keys;
      }
      const ident = await next();
      if (ident.op !== "identified") throw new LoginError("protocol", `expected identified, got ${ident.op}`);
      if (expected && !sameBytes(b64decode(ident.server_signature || ""), expected)) {
        throw new LoginError("impostor", "the server's signature is wrong: not our server");
      }
      this.identified = ident;
      // Events that came right behind `identified` (the snapshot) in the same task.
      for (const raw of inbox.splice(0)) this._dispatch(raw);
      return ident;
    } catch (e) {
      this._closedByUs = true;
      try { ws.close(); } catch { /* already closed */ }
      throw e;
    }
  }

  // Identified and not closed: requests can be sent.
  get isOpen() {
    return this.ws && this.ws.readyState === WebSocket.OPEN && this.identified;
  }

  _dispatch(raw) {
    let msg;
    try { msg = JSON.parse(raw); } catch { return; }
    if (msg.op === "event") return this.onEvent(msg);
    const key = msg.op === "identified" ? "identified" : `${msg.op}:${msg.id}`;
    const p = this._pending.get(key);
    if (p) {
      this._pending.delete(key);
      clearTimeout(p.timer);
      p.resolve(msg);
    }
  }

  _closed(code, reason) {
    for (const p of this._pending.values()) {
      clearTimeout(p.timer);
      p.reject(new ApiError({ code: "disconnected", message: reason || "connection lost", retryable: true }));
    }
    this._pending.clear();
    this.onClose(code, reason, this._closedByUs);
  }

  _exchange(key, message) {
    if (!this.isOpen) {
      return Promise.reject(new ApiError({ code: "disconnected", message: "not connected", retryable: true }));
    }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this._pending.delete(key);
        reject(new ApiError({ code: "timeout", message: "no answer from the server", retryable: true }));
      }, ANSWER_TIMEOUT_MS);
      this._pending.set(key, { resolve, reject, timer });
      this.ws.send(JSON.stringify(message));
    });
  }

  // The result of one request; throws ApiError when the server answers an error.
  async call(method, params = {}, ifRevision = null) {
    const id = this._next++;
    const msg = { op: "request", id, method, params };
    if (ifRevision != null) msg.if_revision = ifRevision;
    const resp = await this._exchange(`response:${id}`, msg);
    if (!resp.ok) throw new ApiError(resp.error || { code: "internal", message: "no error body" });
    return resp.result;
  }

  async batch(requests, mode = "atomic", ifRevision = null) {
    const id = `b${this._next++}`;
    const msg = { op: "batch", id, mode, requests };
    if (ifRevision != null) msg.if_revision = ifRevision;
    const resp = await this._exchange(`batch_response:${id}`, msg);
    if (!resp.ok) throw new ApiError(resp.error || { code: "internal", message: "batch failed" });
    return resp;
  }

  async reidentify(subscriptions) {
    this.identified = await this._exchange("identified", { op: "reidentify", subscriptions });
    return this.identified;
  }

  close() {
    this._closedByUs = true;
    if (this.ws) this.ws.close(1000, "logout");
  }
}
