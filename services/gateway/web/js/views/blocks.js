// Blocking in the page: the "are you sure?" before a block (what it does, in plain words), and
// the "Blocked users" list of the profile editor, each with Unblock.

import { state } from "../store.js";
import { h, setText, syncList } from "../dom.js";
import { profiles, block, unblock } from "../profile_state.js";
import { userAvatar, updateUserAvatar, displayName } from "./avatar.js";
import { t } from "../i18n.js";

let confirmDialog = null;

/** A modal yes/no question; resolves true when the user confirms. */
export function confirmAction(question, detail, okLabel) {
  if (!confirmDialog) {
    confirmDialog = h("dialog", { class: "dialog confirm-dialog", role: "alertdialog", "aria-labelledby": "confirm-title",
      "aria-describedby": "confirm-detail", dataset: { testid: "confirm-dialog" } },
    h("form", { method: "dialog" },
      h("h2", { id: "confirm-title" }),
      h("p", { id: "confirm-detail", class: "muted" }),
      h("div", { class: "dialog-actions" },
        h("button", { type: "submit", value: "cancel", dataset: { testid: "confirm-cancel" }, "data-i18n": "common.cancel" }),
        h("button", { type: "submit", value: "ok", class: "danger-fill", dataset: { testid: "confirm-ok" } }))));
    document.body.append(confirmDialog);
  }
  setText(confirmDialog.querySelector("h2"), question);
  setText(confirmDialog.querySelector("p"), detail);
  const ok = confirmDialog.querySelector('[data-testid="confirm-ok"]');
  setText(ok, okLabel);
  confirmDialog.returnValue = "";
  return new Promise((resolve) => {
    confirmDialog.addEventListener("close", () => resolve(confirmDialog.returnValue === "ok"), { once: true });
    confirmDialog.showModal();
    confirmDialog.querySelector('[data-testid="confirm-cancel"]').focus();
  });
}

/** Ask, then block `userId`; true when blocked. */
export async function askToBlock(userId) {
  const name = displayName(userId);
  const sure = await confirmAction(t("blocks.confirm_title", { name }), t("blocks.confirm_text", { name }), t("blocks.block"));
  return sure ? block(userId) : false;
}

/** Keep `list` showing the blocked users (with Unblock buttons), `empty` when there are none. */
export function renderBlockedList(list, empty) {
  const users = [...profiles.blocked.values()];
  empty.hidden = users.length > 0 || !profiles.blocksLoaded;
  syncList(list, users, (u) => u.user_id, createBlocked, updateBlocked);
}

function createBlocked(user) {
  const button = h("button", { type: "button", class: "small", dataset: { testid: "unblock" } }, t("blocks.unblock"));
  button.addEventListener("click", async () => {
    button.disabled = true;
    await unblock(user.user_id);
    button.disabled = false;
  });
  return h("li", { class: "row", dataset: { testid: "blocked-user", userId: user.user_id } },
    userAvatar(user.user_id, 32),
    h("span", { class: "who" }, h("span", { class: "name" }), h("span", { class: "sub muted small" })),
    button);
}

function updateBlocked(el, user) {
  const known = state.users.get(user.user_id) || user;
  const name = known.display_name || known.username || "?";
  updateUserAvatar(el.querySelector(".avatar"), user.user_id);
  setText(el.querySelector(".name"), name);
  setText(el.querySelector(".sub"), known.username ? `@${known.username}` : "");
  el.querySelector("button").setAttribute("aria-label", t("blocks.unblock_who", { name }));
}
