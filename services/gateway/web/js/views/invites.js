// The group info panel's sections for owners and admins: invite links (create one with an
// optional expiry and number of uses, copy it, see how often it was used, revoke it) and the
// join requests waiting for an answer (groups with "approval required").

import { state } from "../store.js";
import { h, setText, setAttr, syncList, fullTime, ago } from "../dom.js";
import { userAvatar, updateUserAvatar, displayName } from "./avatar.js";
import {
  loadInvites, createInvite, revokeInvite, inviteLink, acceptRequest, declineRequest,
} from "../group_actions.js";
import { toast } from "./notice.js";
import { t, msgKey } from "../i18n.js";

const EXPIRY = [
  ["", msgKey("invites.expiry.never")], ["3600", msgKey("invites.expiry.1h")], ["86400", msgKey("invites.expiry.1d")],
  ["604800", msgKey("invites.expiry.7d")], ["2592000", msgKey("invites.expiry.30d")],
];

// --- invite links --------------------------------------------------------------------------------
export function setupInvites() {
  const expiry = h("select", { "data-i18n-aria-label": "invites.expiry_label", dataset: { testid: "invite-expiry" } },
    ...EXPIRY.map(([value, key]) => h("option", { value, "data-i18n": key })));
  const maxUses = h("input", {
    type: "number", min: "1", max: "1000", "data-i18n-placeholder": "invites.max_uses", inputmode: "numeric",
    "data-i18n-aria-label": "invites.max_uses_label", dataset: { testid: "invite-max-uses" },
  });
  const create = h("button", { type: "submit", class: "small primary", dataset: { testid: "invite-create" }, "data-i18n": "invites.create" });
  const form = h("form", { class: "gi-invite-form" }, expiry, maxUses, create);
  const list = h("ul", { class: "list gi-invites", dataset: { testid: "invite-list" } });
  const empty = h("p", { class: "muted small", "data-i18n": "invites.none" });
  const section = h("section", { class: "gi-section", "data-i18n-aria-label": "invites.title", dataset: { testid: "invites-section" } },
    h("h3", { "data-i18n": "invites.title" }), form, list, empty);
  let group = null;

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!group) return;
    const uses = maxUses.value.trim() ? Number(maxUses.value) : 0;
    if (uses && (!Number.isInteger(uses) || uses < 1 || uses > 1000)) {
      toast(t("invites.bad_max_uses"));
      maxUses.focus();
      return;
    }
    create.disabled = true;
    const invite = await createInvite(group, Number(expiry.value) || 0, uses);
    create.disabled = false;
    if (invite) {
      maxUses.value = "";
      copy(inviteLink(invite));
    }
  });

  return {
    section,
    render(current) {
      group = current;
      if (current.invites === undefined) {
        current.invites = null;
        loadInvites(current);
      }
      const invites = current.invites || [];
      empty.hidden = invites.length > 0 || current.invites === null;
      syncList(list, invites, (i) => i.code, (i) => createInviteRow(() => group, i), updateInviteRow);
    },
  };
}

function createInviteRow(currentGroup, invite) {
  const link = h("input", { type: "text", readonly: true, class: "gi-link", "aria-label": t("invites.link"), dataset: { testid: "invite-url" } });
  link.addEventListener("focus", () => link.select());
  const copyButton = h("button", { type: "button", class: "small", dataset: { testid: "invite-copy" } }, t("invites.copy"));
  copyButton.addEventListener("click", () => copy(link.value, link));
  const revoke = h("button", { type: "button", class: "small danger", dataset: { testid: "invite-revoke" } }, t("invites.revoke"));
  revoke.addEventListener("click", async () => {
    revoke.disabled = true;
    await revokeInvite(currentGroup(), invite.code);
    revoke.disabled = false;
  });
  return h("li", { class: "gi-invite", dataset: { testid: "invite", code: invite.code } },
    h("div", { class: "gi-link-row" }, link, copyButton, revoke),
    h("p", { class: "muted small gi-invite-meta" }));
}

function updateInviteRow(el, invite) {
  const link = el.querySelector(".gi-link");
  const url = inviteLink(invite);
  if (link.value !== url) link.value = url;
  const uses = invite.max_uses ? t("invites.used_of", { count: invite.uses, max: invite.max_uses }) : t("invites.used", { count: invite.uses });
  const expires = invite.expires_at ? t("invites.expires", { time: fullTime(invite.expires_at) }) : t("invites.never_expires");
  const parts = [uses, expires];
  if (invite.created_by) parts.push(t("invites.by", { name: displayName(invite.created_by) }));
  setText(el.querySelector(".gi-invite-meta"), parts.join(" · "));
}

/** Put `text` on the clipboard (or, where the browser refuses, leave it selected to copy by hand). */
async function copy(text, field = null) {
  try {
    await navigator.clipboard.writeText(text);
    toast(t("invites.copied"));
  } catch {
    if (field) {
      field.focus();
      field.select();
    }
    toast(t("invites.copy_by_hand"));
  }
}

// --- join requests -------------------------------------------------------------------------------
export function setupRequests() {
  const list = h("ul", { class: "list gi-requests", dataset: { testid: "join-requests" } });
  const count = h("span", { class: "badge", dataset: { testid: "requests-badge" } });
  const empty = h("p", { class: "muted small", "data-i18n": "requests.none" });
  const section = h("section", { class: "gi-section", "data-i18n-aria-label": "requests.title", dataset: { testid: "requests-section" } },
    h("h3", {}, h("span", { "data-i18n": "requests.title" }), " ", count), list, empty);
  let group = null;

  return {
    section,
    render(current) {
      group = current;
      const requests = current.requests || [];
      section.hidden = !current.approval_required && requests.length === 0;
      count.hidden = requests.length === 0;
      setText(count, String(requests.length));
      empty.hidden = requests.length > 0;
      syncList(list, requests, (r) => r.user.user_id, (r) => createRequestRow(() => group, r), updateRequestRow);
    },
  };
}

function createRequestRow(currentGroup, request) {
  const userId = request.user.user_id;
  const accept = h("button", { type: "button", class: "small primary", dataset: { testid: "join-request-accept" } }, t("requests.accept"));
  const decline = h("button", { type: "button", class: "small ghost", dataset: { testid: "join-request-decline" } }, t("requests.decline"));
  accept.addEventListener("click", async () => {
    accept.disabled = decline.disabled = true;
    await acceptRequest(currentGroup(), userId);
    accept.disabled = decline.disabled = false;
  });
  decline.addEventListener("click", async () => {
    accept.disabled = decline.disabled = true;
    await declineRequest(currentGroup(), userId);
    accept.disabled = decline.disabled = false;
  });
  return h("li", { class: "row", dataset: { testid: "join-request", userId } },
    userAvatar(userId),
    h("span", { class: "who" }, h("span", { class: "name" }), h("span", { class: "sub muted small" })),
    h("span", { class: "actions" }, accept, decline));
}

function updateRequestRow(el, request) {
  const user = state.users.get(request.user.user_id) || request.user;
  updateUserAvatar(el.querySelector(".avatar"), request.user.user_id);
  setText(el.querySelector(".name"), user.display_name || user.username);
  setText(el.querySelector(".sub"), t("requests.asked", { handle: `@${user.username}`, ago: ago(request.requested_at) }));
  setAttr(el.querySelector('[data-testid="join-request-accept"]'), "aria-label", t("requests.accept_who", { name: user.username }));
  setAttr(el.querySelector('[data-testid="join-request-decline"]'), "aria-label", t("requests.decline_who", { name: user.username }));
}
