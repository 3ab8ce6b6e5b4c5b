// Safety numbers (docs/security.md "Trust" and its test vector), with Web Crypto's SHA-512:
// per user, K = their devices' Ed25519 signing keys (raw bytes, sorted bytewise, joined);
// h = SHA-512(00 00 ‖ K ‖ user_id), then 5,200 times h = SHA-512(h ‖ K); six 5-byte big-endian
// numbers mod 100,000 → 30 digits. The smaller user_id's digits first: 60 digits.

import { unb64 } from "./e2e_store.js";

export const ITERATIONS = 5200;
export const QR_PREFIX = "parley-sn:1:";

function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

function compareBytes(a, b) {
  for (let i = 0; i < Math.min(a.length, b.length); i += 1) if (a[i] !== b[i]) return a[i] - b[i];
  return a.length - b.length;
}

/** The 30 digits of one user, from their devices' signing keys (unpadded base64). */
export async function fingerprint(userId, signingKeys) {
  const joined = concat(...signingKeys.map(unb64).sort(compareBytes));
  let h = new Uint8Array(await crypto.subtle.digest("SHA-512", concat(new Uint8Array([0, 0]), joined, new TextEncoder().encode(userId))));
  for (let i = 0; i < ITERATIONS; i += 1) {
    h = new Uint8Array(await crypto.subtle.digest("SHA-512", concat(h, joined)));
  }
  let digits = "";
  for (let i = 0; i < 30; i += 5) {
    let n = 0;
    for (let j = i; j < i + 5; j += 1) n = n * 256 + h[j]; // < 2^40: exact in a double
    digits += String(n % 100000).padStart(5, "0");
  }
  return digits;
}

/** 60 digits: the smaller user_id's 30 first (compared as strings, as the Python client does). */
export async function safetyNumber(userA, keysA, userB, keysB) {
  const halves = [[userA, await fingerprint(userA, keysA)], [userB, await fingerprint(userB, keysB)]];
  halves.sort((x, y) => (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0));
  return halves[0][1] + halves[1][1];
}

/** 12 groups of 5 digits. */
export function groups(digits) {
  return digits.match(/\d{5}/g) || [];
}

export function qrText(digits) {
  return QR_PREFIX + digits;
}
