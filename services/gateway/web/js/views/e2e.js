// End-to-end encryption in the conversation (docs/security.md; the engine is ../e2e.js): the
// "Turn on end-to-end encryption" action of a direct chat, the lock badge of an encrypted one,
// the notice when a peer's security key changed, the safety-number panel (60 digits in 12
// groups, a QR code of `parley-sn:1:<digits>`, "Mark as verified"), and the offer to share my
// history with a new device of mine.

import { state, changed, openConv, adoptId, convById, nameOf } from "../store.js";
import { isManager } from "../group_state.js";
import { h, setText, setAttr } from "../dom.js";
import { conn, showError } from "../wire.js";
import { t, applyTranslations, onLocaleChange } from "../i18n.js";
import { e2e, devicesOf, dismissKeyChange, markVerified, isVerified, signingKeys, shareHistory } from "../e2e.js";
import { safetyNumber, groups, qrText } from "../safety.js";
import { refreshConversations } from "../session.js";

const QR_JS = "/app/vendor/dist/qrcode.mjs";

/** Why I cannot write in `conv` now ("" when I can): encryption is on but not available here. */
export function e2eBlock(conv) {
  if (!conv?.encryptedAt || e2e.status !== "unavailable") return "";
  return t("e2e.blocked", { reason: e2e.reason ? e2e.reason() : "" });
}

/** What an encrypted message shows in place of its content while it is not readable, or "". */
export function e2eWords(message) {
  switch (message.e2e || (message.encrypted ? "pending" : "")) {
    case "pending": return t("e2e.decrypting");
    case "before": return t("e2e.before_device");
    case "failed": return t("e2e.undecryptable");
    case "unavailable": return t("e2e.locked");
    case "waiting": return t("e2e.waiting_key");
    case "nokey": return t("e2e.no_key");
    default: return "";
  }
}

/** Turn on end-to-end encryption in the direct conversation or group `conv` (cannot be undone). */
export async function turnOn(conv) {
  if (e2e.status !== "ready") {
    showError(() => (e2e.status === "unavailable" && e2e.reason ? t("e2e.unavailable", { reason: e2e.reason() }) : t("e2e.not_ready")));
    return;
  }
  try {
    if (conv.kind === "group") { // the owner or an admin; every member's device gets room keys
      const reply = await conn.request("conversations.encrypt", { to: { group_id: conv.groupId } });
      const target = reply.conversation_id ? adoptId(conv, reply.conversation_id) : conv;
      target.encryptedAt ||= reply.encrypted_at || new Date().toISOString();
      target.all += 1;
      changed();
      return;
    }
    if (!(await devicesOf(conv.peerId, true)).length) {
      showError(() => t("e2e.error_no_keys"));
      return;
    }
    const reply = await conn.request("conversations.encrypt", { to: { user_id: conv.peerId } });
    const target = adoptId(conv, reply.conversation_id);
    target.encryptedAt = reply.encrypted_at || new Date().toISOString();
    target.all += 1;
    changed();
  } catch (error) {
    showError(error, "conversations.encrypt");
  }
}

export function listenE2E() {
  conn.on("conversation.encrypted", ({ conversation_id: id, encrypted_at: at }) => {
    const conv = convById(id);
    if (conv) {
      conv.encryptedAt ||= at;
      conv.all += 1;
      changed();
    } else {
      refreshConversations().catch(() => {});
    }
  });
}

// --- the views -------------------------------------------------------------------------------------
export function setupE2EViews() {
  const chatOpen = document.getElementById("chat-open"); // kept: the app screen may be out of the document
  const head = chatOpen.querySelector(".chat-head");
  const turnOnButton = h("button", { type: "button", class: "ghost small e2e-turn-on", "data-i18n-title": "e2e.turn_on", "data-i18n-aria-label": "e2e.turn_on", dataset: { testid: "e2e-turn-on" }, hidden: true },
    "🔓 ", h("span", { class: "e2e-label", "data-i18n": "e2e.turn_on" }));
  const badge = h("button", { type: "button", class: "ghost small e2e-badge", dataset: { testid: "e2e-badge" }, hidden: true },
    "🔒 ", h("span", { "data-i18n": "e2e.badge" }));
  head.append(turnOnButton, badge);
  turnOnButton.addEventListener("click", () => {
    const conv = openConv();
    if (conv?.kind === "direct" || (conv?.kind === "group" && isManager(state.groups.get(conv.groupId)))) turnOn(conv);
  });
  badge.addEventListener("click", () => {
    const conv = openConv();
    if (conv?.kind === "direct") openSafety(conv); // a group has no one safety number
  });

  // A peer's key changed: said in the conversation until seen.
  const keyText = h("span", { class: "e2e-notice-text" });
  const compare = h("button", { type: "button", class: "link small", "data-i18n": "e2e.compare", dataset: { testid: "e2e-compare" } });
  const seen = h("button", { type: "button", class: "ghost small", "data-i18n": "common.ok", dataset: { testid: "e2e-key-seen" } });
  const keyNotice = h("div", { class: "e2e-notice", role: "status", dataset: { testid: "e2e-key-changed" }, hidden: true }, "⚠️ ", keyText, " ", compare, seen);
  head.after(keyNotice);
  compare.addEventListener("click", () => {
    const conv = openConv();
    if (conv) openSafety(conv);
  });
  seen.addEventListener("click", () => {
    const conv = openConv();
    if (conv) dismissKeyChange(conv.peerId);
  });

  // A new device of mine: offer it my history (only my devices can; the server cannot).
  const deviceText = h("span", { "data-i18n": "e2e.new_device" });
  const share = h("button", { type: "button", class: "primary small", "data-i18n": "e2e.share_history", dataset: { testid: "e2e-share-history" } });
  const later = h("button", { type: "button", class: "ghost small", "data-i18n": "e2e.not_now", dataset: { testid: "e2e-share-later" } });
  const progress = h("span", { class: "muted small", dataset: { testid: "e2e-share-progress" } });
  const deviceBanner = h("div", { class: "e2e-banner", role: "status", dataset: { testid: "e2e-new-device" }, hidden: true }, "🔒 ", deviceText, " ", share, later, progress);
  document.getElementById("error-banner").after(deviceBanner);
  share.addEventListener("click", async () => {
    const deviceId = e2e.newDevices[0];
    if (!deviceId) return;
    share.disabled = true;
    try {
      const count = await shareHistory(deviceId);
      progress.textContent = t("e2e.shared", { count });
    } catch (error) {
      showError(error, "devices.send");
    } finally {
      share.disabled = false;
      changed();
    }
  });
  later.addEventListener("click", () => {
    e2e.newDevices.shift();
    changed();
  });

  const translate = () => applyTranslations(head.parentElement);
  onLocaleChange(translate);
  translate();
  applyTranslations(deviceBanner);
  onLocaleChange(() => applyTranslations(deviceBanner));

  const checked = new Set(); // peers whose verified mark was read from the pins since the page started
  return function renderE2E() {
    const conv = openConv();
    const direct = conv?.kind === "direct";
    if (direct && conv.encryptedAt && e2e.status === "ready" && !checked.has(conv.peerId)) {
      const peer = conv.peerId;
      checked.add(peer);
      isVerified(peer).then((verified) => {
        if (verified && !e2e.keyChanges.get(peer)?.length) e2e.verified.set(peer, true);
        changed();
      }, () => checked.delete(peer));
    }
    const managed = conv?.kind === "group" && !conv.ended && isManager(state.groups.get(conv.groupId));
    turnOnButton.hidden = !(direct || managed) || Boolean(conv.encryptedAt);
    badge.hidden = !conv?.encryptedAt;
    setAttr(badge, "title", direct ? t("e2e.badge_title") : t("e2e.badge_title_group"));
    badge.dataset.verified = String(Boolean(conv && e2e.verified.get(conv.peerId)));
    chatOpen.dataset.encrypted = String(Boolean(conv?.encryptedAt));
    document.body.dataset.e2e = e2e.status; // off | loading | ready (keys published) | unavailable
    const changes = direct ? e2e.keyChanges.get(conv.peerId) : null;
    keyNotice.hidden = !changes?.length;
    if (changes?.length) setText(keyText, t("e2e.key_changed", { name: nameOf(conv.peerId) }));
    deviceBanner.hidden = !e2e.newDevices.length && !e2e.sharing;
    if (e2e.sharing) setText(progress, t("e2e.sharing", { sent: e2e.sharing.sent, total: e2e.sharing.total }));
    else if (!deviceBanner.hidden && progress.textContent && !share.disabled && e2e.newDevices.length) setText(progress, "");
  };
}

// --- the safety number ---------------------------------------------------------------------------------
let panel = null;

function buildPanel() {
  const title = h("h2", { class: "safety-title" });
  const intro = h("p", { class: "muted small", "data-i18n": "e2e.safety_intro" });
  const digits = h("div", { class: "safety-digits", dataset: { testid: "safety-number" } });
  const canvas = h("canvas", { class: "safety-qr", width: 200, height: 200, dataset: { testid: "safety-qr" }, "data-i18n-aria-label": "e2e.qr_label", role: "img" });
  const status = h("p", { class: "small", role: "status", dataset: { testid: "safety-status" } });
  const verify = h("button", { type: "button", class: "primary", "data-i18n": "e2e.mark_verified", dataset: { testid: "e2e-mark-verified" } });
  const close = h("button", { type: "button", "data-i18n": "common.close", dataset: { testid: "safety-close" } });
  const dialog = h("dialog", { class: "dialog safety-panel", dataset: { testid: "safety-panel" } },
    title, intro, digits, canvas, status, h("div", { class: "dialog-actions" }, close, verify));
  close.addEventListener("click", () => dialog.close());
  document.body.append(dialog);
  applyTranslations(dialog);
  onLocaleChange(() => applyTranslations(dialog));
  return { dialog, title, digits, canvas, status, verify };
}

async function drawQr(canvas, text) {
  const context = canvas.getContext("2d");
  context.clearRect(0, 0, canvas.width, canvas.height);
  canvas.dataset.text = "";
  try {
    const { default: qrcode } = await import(QR_JS);
    const qr = qrcode(0, "M");
    qr.addData(text);
    qr.make();
    const count = qr.getModuleCount();
    const cell = Math.floor(canvas.width / (count + 8));
    const offset = Math.floor((canvas.width - cell * count) / 2);
    context.fillStyle = "#fff";
    context.fillRect(0, 0, canvas.width, canvas.height);
    context.fillStyle = "#000";
    for (let row = 0; row < count; row += 1) {
      for (let col = 0; col < count; col += 1) {
        if (qr.isDark(row, col)) context.fillRect(offset + col * cell, offset + row * cell, cell, cell);
      }
    }
    canvas.dataset.text = text;
    canvas.hidden = false;
  } catch (error) {
    console.warn("no QR encoder here", error);
    canvas.hidden = true;
  }
}

/** The panel of the safety number between me and the peer of `conv`. */
export async function openSafety(conv) {
  panel ||= buildPanel();
  const { dialog, title, digits, canvas, status, verify } = panel;
  const peer = conv.peerId;
  title.textContent = t("e2e.safety_title", { name: nameOf(peer) });
  digits.replaceChildren(t("common.loading"));
  digits.dataset.digits = "";
  status.textContent = "";
  verify.onclick = async () => {
    verify.disabled = true;
    try {
      await markVerified(peer);
      status.textContent = t("e2e.verified");
      status.dataset.verified = "true";
    } catch (error) {
      showError(error, "keys.devices");
    } finally {
      verify.disabled = false;
    }
  };
  if (!dialog.open) dialog.showModal();
  if (e2e.status !== "ready") {
    digits.replaceChildren(e2e.reason ? t("e2e.unavailable", { reason: e2e.reason() }) : t("e2e.not_ready"));
    return;
  }
  try {
    const me = state.me.user_id;
    const [mine, theirs] = await Promise.all([signingKeys(me), signingKeys(peer)]);
    const number = await safetyNumber(me, mine, peer, theirs);
    digits.dataset.digits = number;
    digits.replaceChildren(...groups(number).map((group) => h("span", { class: "safety-group" }, group)));
    await drawQr(canvas, qrText(number));
    const verified = await isVerified(peer);
    status.dataset.verified = String(verified);
    status.textContent = verified ? t("e2e.verified") : t("e2e.not_verified");
  } catch (error) {
    digits.replaceChildren(t("e2e.safety_failed"));
    showError(error, "keys.devices");
  }
}
