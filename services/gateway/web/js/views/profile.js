// Profiles in the page: my own (the button with my avatar in the top bar opens an editor: display
// name, a new picture uploaded like an attachment, remove the picture, the language of the page
// (English / 简体中文, applied at once: language.js), and the users I blocked),
// someone else's (profile.get, opened from a direct chat's header or a contact: name, picture,
// Message, Block / Unblock), and the avatar in the open conversation's header.

import { state, openConv, titleOf, changed } from "../store.js";
import { h, setText, setAttr } from "../dom.js";
import { describe } from "../errors.js";
import { openDirect } from "../actions.js";
import { profiles, myProfile, isBlocked, fetchProfile, updateProfile, setAvatar, syncProfiles, unblock } from "../profile_state.js";
import { avatarElement, updateAvatar, updateUserAvatar, userAvatar, groupAvatar, updateGroupAvatar, displayName } from "./avatar.js";
import { askToBlock, renderBlockedList } from "./blocks.js";
import { setupLanguageSelect } from "./language.js";
import { t } from "../i18n.js";

const IMAGE_TYPES = "image/png,image/jpeg,image/gif,image/webp";

export function setupProfile() {
  const editor = setupEditor();
  const viewer = setupViewer();
  const header = setupHeader(viewer.open);
  return function renderProfile() {
    syncProfiles();
    editor.render();
    viewer.render();
    header.render();
  };
}

/** Open the profile of `userId` (mine: the editor). Used by the sidebar's contacts. */
export let showProfile = () => {};

// --- my profile ----------------------------------------------------------------------------------
function setupEditor() {
  const meButton = document.getElementById("me-button");
  const meAvatar = avatarElement({ size: 28 });
  document.getElementById("me-avatar").replaceChildren(meAvatar);

  const picture = avatarElement({ size: 96 });
  const fileInput = h("input", { type: "file", accept: IMAGE_TYPES, class: "visually-hidden", tabindex: "-1",
    id: "avatar-input", dataset: { testid: "avatar-input" } });
  const change = h("button", { type: "button", class: "small", dataset: { testid: "change-avatar" }, "data-i18n": "profile.change_photo" });
  const remove = h("button", { type: "button", class: "small ghost", dataset: { testid: "remove-avatar" }, "data-i18n": "profile.remove_photo" });
  const progress = h("progress", { max: "100", value: "0", hidden: true, "data-i18n-aria-label": "profile.uploading_photo" });
  const name = h("input", { id: "profile-display-name", maxlength: "64", autocomplete: "nickname", required: true,
    dataset: { testid: "profile-display-name" } });
  const handle = h("p", { class: "muted small", dataset: { testid: "profile-username" } });
  const error = h("p", { class: "form-error", role: "alert", dataset: { testid: "profile-error" } });
  const save = h("button", { type: "submit", class: "primary", dataset: { testid: "profile-save" }, "data-i18n": "common.save" });
  const close = h("button", { type: "button", dataset: { testid: "profile-close" }, "data-i18n": "common.close" });
  const blockedList = h("ul", { class: "list blocked-list", dataset: { testid: "blocked-list" } });
  const blockedEmpty = h("p", { class: "muted small", "data-i18n": "blocks.none" });
  const language = setupLanguageSelect(h("select", { id: "profile-language", class: "language-select", dataset: { testid: "language-select" } }));
  const form = h("form", { method: "dialog", novalidate: true },
    h("h2", { id: "profile-title", "data-i18n": "profile.yours" }),
    h("div", { class: "profile-head" }, picture,
      h("div", { class: "profile-photo-actions" }, change, remove, fileInput, progress)),
    h("label", { for: "profile-display-name", "data-i18n": "profile.display_name" }),
    name, handle, error,
    h("label", { for: "profile-language", "data-i18n": "profile.language" }), language,
    h("div", { class: "dialog-actions" }, close, save),
    h("section", { class: "blocked-section", "aria-labelledby": "blocked-title" },
      h("h3", { id: "blocked-title", "data-i18n": "blocks.title" }), blockedList, blockedEmpty));
  const dialog = h("dialog", { id: "profile-dialog", class: "dialog profile-dialog", "aria-labelledby": "profile-title",
    dataset: { testid: "profile-dialog" } }, form);
  document.getElementById("app-screen").append(dialog);

  function open() {
    const me = myProfile();
    if (!me) return;
    name.value = me.display_name || me.username;
    setText(error, "");
    dialog.showModal();
    name.focus();
    changed(); // drawn by render()
  }
  meButton.addEventListener("click", open);
  close.addEventListener("click", () => dialog.close());
  change.addEventListener("click", () => fileInput.click());
  fileInput.addEventListener("change", async () => {
    const file = fileInput.files[0];
    fileInput.value = "";
    if (!file) return;
    setText(error, "");
    try {
      await setAvatar(file);
    } catch (failure) {
      setText(error, describe(failure, failure.status ? "upload" : "profile.update"));
    }
  });
  remove.addEventListener("click", async () => {
    setText(error, "");
    try {
      await updateProfile({ clear_avatar: true });
    } catch (failure) {
      setText(error, describe(failure, "profile.update"));
    }
  });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const wanted = name.value.trim();
    if (!wanted) {
      setText(error, t("errors.field_rule", { field: t("errors.field.display_name"), rule: t("errors.rule.required") }));
      name.focus();
      return;
    }
    const me = myProfile();
    setText(error, "");
    if (wanted !== (me.display_name || me.username)) {
      try {
        await updateProfile({ display_name: wanted });
      } catch (failure) {
        setText(error, describe(failure, "profile.update"));
        return;
      }
    }
    dialog.close();
  });

  return {
    render() {
      const me = myProfile();
      if (!me) {
        if (dialog.open) dialog.close();
        return;
      }
      const shown = me.display_name || me.username;
      updateAvatar(meAvatar, { url: me.avatar_url, name: shown, seed: me.user_id });
      setAttr(meButton, "aria-label", t("profile.button_label", { name: shown, handle: `@${me.username}` }));
      if (!dialog.open) return;
      updateAvatar(picture, { url: me.avatar_url, name: shown, seed: me.user_id });
      setText(handle, `@${me.username}`);
      const uploading = profiles.avatarUpload;
      progress.hidden = !uploading;
      if (uploading) progress.value = Math.round(uploading.progress * 100);
      change.disabled = remove.disabled = Boolean(uploading) || profiles.busy || !state.bound;
      remove.hidden = !me.avatar_url;
      save.disabled = profiles.busy || !state.bound;
      renderBlockedList(blockedList, blockedEmpty);
    },
  };
}

// --- someone else's profile ----------------------------------------------------------------------
function setupViewer() {
  const picture = avatarElement({ size: 96 });
  const title = h("h2", { id: "user-profile-name", dataset: { testid: "user-profile-name" } });
  const handle = h("p", { class: "muted small", dataset: { testid: "user-profile-username" } });
  const relation = h("p", { class: "muted small", dataset: { testid: "user-profile-relation" } });
  const error = h("p", { class: "form-error", role: "alert" });
  const message = h("button", { type: "button", class: "primary", dataset: { testid: "user-profile-message" }, "data-i18n": "profile.message" });
  const blockButton = h("button", { type: "button", class: "danger", dataset: { testid: "user-profile-block" } });
  const close = h("button", { type: "button", "data-i18n": "common.close" });
  const dialog = h("dialog", { id: "user-dialog", class: "dialog profile-dialog", "aria-labelledby": "user-profile-name",
    dataset: { testid: "user-profile" } },
  h("div", { class: "profile-card" }, picture, title, handle, relation, error,
    h("div", { class: "dialog-actions" }, blockButton, message, close)));
  document.getElementById("app-screen").append(dialog);
  let userId = null;

  async function open(id) {
    if (!id) return;
    if (id === state.me?.user_id) {
      document.getElementById("me-button").click();
      return;
    }
    userId = id;
    setText(error, "");
    dialog.showModal();
    draw();
    close.focus();
    try {
      await fetchProfile(id);
    } catch (failure) {
      if (userId === id) setText(error, describe(failure, "profile.get"));
    }
  }
  showProfile = open;

  function draw() {
    const user = state.users.get(userId) || {};
    updateUserAvatar(picture, userId);
    setText(title, displayName(userId));
    setText(handle, user.username ? `@${user.username}` : "");
    const blocked = isBlocked(userId);
    const friend = state.friends.has(userId);
    setText(relation, blocked ? t("contacts.blocked") : friend ? t("profile.friend") : t("profile.not_friend"));
    message.hidden = !friend;
    setText(blockButton, blocked ? t("blocks.unblock") : t("blocks.block"));
    setAttr(blockButton, "data-blocked", blocked ? "true" : "false");
    blockButton.disabled = !state.bound;
  }

  message.addEventListener("click", () => {
    dialog.close();
    openDirect(userId);
  });
  close.addEventListener("click", () => dialog.close());
  blockButton.addEventListener("click", async () => {
    if (isBlocked(userId)) await unblock(userId);
    else await askToBlock(userId);
  });

  return {
    open,
    render() {
      if (dialog.open && userId) draw();
    },
  };
}

// --- the open conversation's header --------------------------------------------------------------
function setupHeader(openProfile) {
  const peerButton = document.getElementById("chat-peer");
  const blockButton = document.getElementById("block-peer");
  let slotAvatar = null;
  let slotKind = "";

  peerButton.addEventListener("click", () => {
    const conv = openConv();
    if (conv?.kind === "direct") openProfile(conv.peerId);
    else if (conv?.kind === "group") document.getElementById("group-info")?.click();
  });
  blockButton.addEventListener("click", async () => {
    const conv = openConv();
    if (conv?.kind !== "direct") return;
    if (isBlocked(conv.peerId)) await unblock(conv.peerId);
    else await askToBlock(conv.peerId);
  });

  return {
    render() {
      const conv = openConv();
      if (!conv) return;
      const kind = conv.kind === "group" ? "group" : "direct";
      if (slotKind !== kind) {
        slotKind = kind;
        slotAvatar = kind === "group" ? groupAvatar(state.groups.get(conv.groupId), 40) : userAvatar(conv.peerId, 40);
        peerButton.replaceChildren(slotAvatar);
      }
      if (kind === "group") updateGroupAvatar(slotAvatar, state.groups.get(conv.groupId));
      else updateUserAvatar(slotAvatar, conv.peerId);
      const name = titleOf(conv);
      setAttr(peerButton, "aria-label", kind === "group" ? t("groups.members_of", { name }) : t("profile.profile_of", { name }));
      setAttr(peerButton, "title", kind === "group" ? t("groups.members") : t("profile.profile"));
      blockButton.hidden = kind !== "direct";
      if (kind === "direct") {
        const blocked = isBlocked(conv.peerId);
        setText(blockButton, blocked ? t("blocks.unblock") : t("blocks.block"));
        setAttr(blockButton, "data-blocked", blocked ? "true" : "false");
        setAttr(blockButton, "aria-label", blocked ? t("blocks.unblock_who", { name }) : t("blocks.block_who", { name }));
      }
    },
  };
}
