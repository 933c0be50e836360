// SCRAM-SHA-256 (RFC 5802 / RFC 7677) for the browser, on WebCrypto.
//
// WebCrypto exists only in a secure context: https://, or http:// on 127.0.0.1 /
// localhost. A console served over plain http:// from another address cannot log in;
// such a deployment needs TLS (see docs/console.md).
//
// The password never leaves this module and nothing here is stored: the keys derived
// from it (ClientKey, ServerKey) stay in memory so a dropped connection can log in
// again without asking, and are forgotten on logout or page unload.

const enc = new TextEncoder();

export function cryptoAvailable() {
  return Boolean(globalThis.isSecureContext && globalThis.crypto && crypto.subtle);
}

export function b64encode(bytes) {
  let s = "";
  for (const b of new Uint8Array(bytes)) s += String.fromCharCode(b);
  return btoa(s);
}

export function b64decode(text) {
  const s = atob(text);
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

// A client nonce: printable ASCII without "," and "=" (base64url, no padding).
export function makeNonce() {
  const raw = crypto.getRandomValues(new Uint8Array(24));
  return b64encode(raw).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

async function hmac(keyBytes, data) {
  const key = await crypto.subtle.importKey(
    "raw", keyBytes, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  return new Uint8Array(await crypto.subtle.sign("HMAC", key, data));
}

// ClientKey and ServerKey from the password: the costly step (PBKDF2), done once per
// salt and iteration count.
export async function deriveKeys(password, saltB64, iterations) {
  const base = await crypto.subtle.importKey(
    "raw", enc.encode(password), "PBKDF2", false, ["deriveBits"]);
  const salted = new Uint8Array(await crypto.subtle.deriveBits(
    { name: "PBKDF2", hash: "SHA-256", salt: b64decode(saltB64), iterations }, base, 256));
  const clientKey = await hmac(salted, enc.encode("Client Key"));
  const serverKey = await hmac(salted, enc.encode("Server Key"));
  salted.fill(0);
  return { salt: saltB64, iterations, clientKey, serverKey };
}

// The proof for one exchange and the server signature to expect back.
export async function proofFor(keys, authMessage) {
  const msg = enc.encode(authMessage);
  const storedKey = new Uint8Array(await crypto.subtle.digest("SHA-256", keys.clientKey));
  const clientSignature = await hmac(storedKey, msg);
  const proof = keys.clientKey.map((b, i) => b ^ clientSignature[i]);
  const serverSignature = await hmac(keys.serverKey, msg);
  return { proof: b64encode(proof), serverSignature };
}

export function authMessage(account, clientNonce, challenge) {
  const n = challenge.nonce;
  return `n=${account},r=${clientNonce},r=${n},s=${challenge.salt},i=${challenge.iterations},c=biws,r=${n}`;
}

// Equal length and content, without an early exit.
export function sameBytes(a, b) {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}
