// The wire: one WebSocket to the gateway's /ws, speaking PROTOCOL.md and nothing else.
// Requests carry ids and their replies are matched by id (they may come back in any order);
// pushes are dispatched by type. A `ping` heartbeat notices a dead link that the browser has not
// noticed yet, and a dropped socket is reopened with backoff (1 s, 2 s, 4 s, 8 s, 10 s ...).

export class ProtocolError extends Error {
  /** code: one of PROTOCOL.md's error codes, or "disconnected" when the socket went away. */
  constructor(code, message, status = undefined) {
    super(message || code);
    this.code = code;
    this.status = status;
  }
}

const PING_EVERY_MS = 25_000;
const PING_TIMEOUT_MS = 10_000;
const REQUEST_TIMEOUT_MS = 30_000;
const BACKOFF_MS = [1000, 2000, 4000, 8000, 10_000];

export class Connection {
  constructor(url) {
    this.url = url;
    this.ws = null;
    this.nextId = 1;
    this.waiting = new Map(); // request id -> {resolve, reject, timer}
    this.pushHandlers = new Map(); // push type -> [fn]
    this.openHandlers = [];
    this.closeHandlers = [];
    this.wanted = false; // whether to keep a socket open
    this.attempt = 0;
    this.retryTimer = null;
    this.retryAt = 0; // when the next attempt starts (ms since epoch), 0 if none is planned
    this.pingTimer = null;
  }

  get isOpen() {
    return this.ws !== null && this.ws.readyState === WebSocket.OPEN;
  }

  /** fn(data) for every push of this type. */
  on(type, fn) {
    if (!this.pushHandlers.has(type)) this.pushHandlers.set(type, []);
    this.pushHandlers.get(type).push(fn);
  }

  onOpen(fn) {
    this.openHandlers.push(fn);
  }

  /** fn({code, reason}) each time the socket closes, before a reconnection is planned. */
  onClose(fn) {
    this.closeHandlers.push(fn);
  }

  start() {
    this.wanted = true;
    if (!this.ws) this.open();
  }

  /** Close for good (until start()): no reconnection. */
  stop(code = 1000) {
    this.wanted = false;
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.retryAt = 0;
    const ws = this.ws;
    if (ws) {
      this.closed(ws, code, "closed by the page");
      ws.close(code);
    }
  }

  /** Skip the rest of the backoff (the user asked, or the browser came back online). */
  retryNow() {
    if (this.wanted && !this.ws) this.open();
  }

  /** A working session again: the next drop starts the backoff from 1 s. */
  resetBackoff() {
    this.attempt = 0;
  }

  /** Give up on the current socket (it looks dead) and reconnect. */
  drop(reason = "no answer from the server") {
    const ws = this.ws;
    if (!ws) return;
    this.closed(ws, 4000, reason);
    try {
      ws.close(4000);
    } catch {
      // already closing
    }
  }

  /** Resolves once the socket is open; rejects after `ms`. */
  whenOpen(ms = 8000) {
    if (this.isOpen) return Promise.resolve();
    this.start();
    this.retryNow();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.openHandlers = this.openHandlers.filter((fn) => fn !== done);
        reject(new ProtocolError("disconnected", "cannot reach the server"));
      }, ms);
      const done = () => {
        clearTimeout(timer);
        this.openHandlers = this.openHandlers.filter((fn) => fn !== done);
        resolve();
      };
      this.openHandlers.push(done);
    });
  }

  /** Send one request; resolves with the reply's `data`, rejects with a ProtocolError. */
  request(type, data = {}, timeoutMs = REQUEST_TIMEOUT_MS) {
    if (!this.isOpen) {
      return Promise.reject(new ProtocolError("disconnected", "not connected to the server"));
    }
    const id = `r${this.nextId++}`;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        reject(new ProtocolError("unavailable", `no reply to ${type}`));
      }, timeoutMs);
      this.waiting.set(id, { resolve, reject, timer });
      this.ws.send(JSON.stringify({ type, id, data }));
    });
  }

  // --- internals ---------------------------------------------------------------------------------
  open() {
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.retryAt = 0;
    let ws;
    try {
      ws = new WebSocket(this.url);
    } catch (error) {
      this.scheduleRetry();
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      if (ws !== this.ws) return;
      this.startHeartbeat();
      for (const fn of [...this.openHandlers]) fn();
    };
    ws.onmessage = (event) => {
      if (ws === this.ws) this.receive(event.data);
    };
    ws.onclose = (event) => {
      if (ws === this.ws) this.closed(ws, event.code, event.reason);
    };
    ws.onerror = () => {}; // a close event follows
  }

  receive(text) {
    let frame;
    try {
      frame = JSON.parse(text);
    } catch {
      return;
    }
    if (frame.type === "reply") {
      const pending = this.waiting.get(frame.id);
      if (!pending) return;
      this.waiting.delete(frame.id);
      clearTimeout(pending.timer);
      if (frame.ok) pending.resolve(frame.data ?? {});
      else pending.reject(new ProtocolError(frame.error?.code || "internal", frame.error?.message));
      return;
    }
    for (const fn of this.pushHandlers.get(frame.type) || []) {
      try {
        fn(frame.data ?? {});
      } catch (error) {
        console.error(`handling push ${frame.type}`, error);
      }
    }
  }

  closed(ws, code, reason) {
    if (ws !== this.ws) return;
    this.ws = null;
    clearInterval(this.pingTimer);
    for (const [, pending] of this.waiting) {
      clearTimeout(pending.timer);
      pending.reject(new ProtocolError("disconnected", "the connection dropped"));
    }
    this.waiting.clear();
    for (const fn of [...this.closeHandlers]) fn({ code, reason });
    if (this.wanted) this.scheduleRetry();
  }

  scheduleRetry() {
    if (this.retryTimer) return;
    const base = BACKOFF_MS[Math.min(this.attempt, BACKOFF_MS.length - 1)];
    const delay = Math.round(base * (0.8 + Math.random() * 0.4)); // spread a crowd's retries
    this.attempt += 1;
    this.retryAt = Date.now() + delay;
    this.retryTimer = setTimeout(() => this.open(), delay);
  }

  startHeartbeat() {
    clearInterval(this.pingTimer);
    this.pingTimer = setInterval(() => {
      if (!this.isOpen) return;
      this.request("ping", {}, PING_TIMEOUT_MS).catch((error) => {
        if (error.code === "unavailable") this.drop();
      });
    }, PING_EVERY_MS);
  }
}
