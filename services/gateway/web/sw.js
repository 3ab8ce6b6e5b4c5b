// Parley's service worker, served at /app/sw.js (scope /app/) by the gateway, which writes
// SHELL_VERSION (a hash of the shell's files) and SHELL_FILES (their URLs) in front of this file
// (services/gateway/web_routes.py), so a change to any of them installs a new worker.
//
// - The app shell (the page, its styles and scripts, icons, the built-in stickers) is precached
//   in a cache named by its version and served cache-first: the page opens with no network. The
//   new version's worker takes over at once and deletes the older caches.
// - Other GETs of the app and of /images/ (avatars, stickers: public) are network-first, falling
//   back to their last copy; /files/ (private, sent with the token) and the API are not touched.
// - Push (docs/push.md): a notification per conversation (tag), replaced or withdrawn by later
//   pushes, and the app badge; a click brings a Parley window to that conversation.
/* global SHELL_VERSION, SHELL_FILES */

const SHELL_PREFIX = "parley-shell-";
const SHELL_CACHE = `${SHELL_PREFIX}${SHELL_VERSION}`;
const RUNTIME_CACHE = "parley-runtime";
const RUNTIME_ENTRIES = 200;
const SCOPE = new URL(self.registration.scope).pathname; // "/app/"
const ICON = `${SCOPE}icons/icon-192.png`;
const BADGE = `${SCOPE}icons/badge-96.png`;
const SHELL = new Set(SHELL_FILES);

// --- the app shell -------------------------------------------------------------------------------
self.addEventListener("install", (event) => {
  event.waitUntil((async () => {
    const cache = await caches.open(SHELL_CACHE);
    // no-cache: revalidated with the gateway, never an older copy from the HTTP cache.
    await cache.addAll(SHELL_FILES.map((url) => new Request(url, { cache: "no-cache" })));
    await self.skipWaiting();
  })());
});

self.addEventListener("activate", (event) => {
  event.waitUntil((async () => {
    for (const name of await caches.keys()) {
      if (name.startsWith(SHELL_PREFIX) && name !== SHELL_CACHE) await caches.delete(name);
    }
    await self.clients.claim();
  })());
});

self.addEventListener("fetch", (event) => {
  const request = event.request;
  if (request.method !== "GET") return;
  const url = new URL(request.url);
  if (url.origin !== self.location.origin) return;
  if (request.mode === "navigate" && url.pathname === SCOPE) {
    event.respondWith(fromShell(new Request(SCOPE), request));
  } else if (SHELL.has(url.pathname)) {
    event.respondWith(fromShell(request, request));
  } else if ((url.pathname.startsWith(SCOPE) || url.pathname.startsWith("/images/"))
             && !request.headers.has("Authorization")) {
    event.respondWith(networkFirst(event, request));
  }
});

async function fromShell(key, request) {
  const cached = await caches.match(key, { cacheName: SHELL_CACHE, ignoreSearch: true });
  return cached || fetch(request);
}

async function networkFirst(event, request) {
  const cache = await caches.open(RUNTIME_CACHE);
  try {
    const response = await fetch(request);
    if (response.ok && response.type === "basic") {
      event.waitUntil(cache.put(request, response.clone()).then(() => trim(cache)));
    }
    return response;
  } catch (error) {
    const cached = await cache.match(request);
    if (cached) return cached;
    throw error;
  }
}

/** Keep the runtime cache bounded: the oldest entries go first. */
async function trim(cache) {
  const keys = await cache.keys();
  for (const key of keys.slice(0, Math.max(0, keys.length - RUNTIME_ENTRIES))) await cache.delete(key);
}

// --- push ----------------------------------------------------------------------------------------
self.addEventListener("push", (event) => {
  let note = null;
  try {
    note = event.data ? event.data.json() : null;
  } catch {
    note = null; // not ours: nothing to show
  }
  event.waitUntil(receive(note));
});

/** One Notification (shared/contracts/push.py) as the push service sends it. */
async function receive(note) {
  if (!note || typeof note.tag !== "string") return;
  if (typeof note.badge === "number") await setBadge(note.badge);
  if (note.kind === "withdraw") {
    for (const shown of await self.registration.getNotifications({ tag: note.tag })) shown.close();
    return;
  }
  const sentAt = note.sent_at ? Date.parse(note.sent_at) : NaN;
  await self.registration.showNotification(note.title || "Parley", {
    body: note.body || "",
    tag: note.tag,
    renotify: true,
    icon: ICON,
    badge: BADGE,
    timestamp: Number.isNaN(sentAt) ? Date.now() : sentAt,
    requireInteraction: note.kind === "call",
    data: { url: sameOrigin(note.url), conversation_id: note.conversation_id || null, kind: note.kind },
  });
}

async function setBadge(count) {
  try {
    if (count > 0 && self.navigator.setAppBadge) await self.navigator.setAppBadge(count);
    else if (self.navigator.clearAppBadge) await self.navigator.clearAppBadge();
  } catch {
    // not an installed app, or no badge on this platform
  }
}

/** A URL of this app only (a push cannot send a click elsewhere). */
function sameOrigin(url) {
  try {
    const target = new URL(url || SCOPE, self.location.origin);
    if (target.origin === self.location.origin && target.pathname.startsWith(SCOPE)) return target.href;
  } catch {
    // not a URL
  }
  return new URL(SCOPE, self.location.origin).href;
}

self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  event.waitUntil(openFromNotification(event.notification.data || {}));
});

/**
 * Bring Parley to the notification's conversation: an open window (the focused one first) is
 * focused and told to open it (js/pwa.js); without one, a window opens at its URL (/app/#c=...).
 */
async function openFromNotification({ url, conversation_id: conversationId }) {
  const windows = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
  const ours = windows.filter((client) => new URL(client.url).pathname.startsWith(SCOPE));
  ours.sort((a, b) => Number(b.focused) - Number(a.focused));
  if (ours.length) {
    const client = ours[0];
    try {
      await client.focus();
    } catch {
      // focusing needs the click's user activation; the message still opens the conversation
    }
    if (conversationId) client.postMessage({ type: "open-conversation", conversation_id: conversationId });
    return;
  }
  await self.clients.openWindow(sameOrigin(url));
}

// The browser replaced the subscription (expired, keys rotated): subscribe again with the same
// key and let an open page tell the server (push.subscribe needs the page's session).
self.addEventListener("pushsubscriptionchange", (event) => {
  event.waitUntil((async () => {
    const key = event.oldSubscription?.options?.applicationServerKey;
    if (key) await self.registration.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: key });
    for (const client of await self.clients.matchAll({ type: "window" })) {
      client.postMessage({ type: "push-subscription-changed" });
    }
  })());
});
