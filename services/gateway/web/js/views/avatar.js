// Avatars: a user's or group's picture (an <img> of a same-origin /images/... URL, which needs
// no token), or, without one, their initials on a colour derived from the name. The element is
// a <span class="avatar"> that keeps its identity when the picture changes (updateAvatar), so
// lists built with syncList can refresh it in place when a profile.updated push arrives.

import { h, initials, hue } from "../dom.js";
import { state } from "../store.js";
import { t } from "../i18n.js";

/**
 * An avatar element. `url`: the picture (null or "" for initials); `name`: alt text, initials
 * and colour; `size`: px (default: the CSS size of the place it is put in); `seed`: what the
 * colour comes from when not the name (a stable id); `group`: rounded square instead of a circle.
 */
export function avatarElement({ url = null, name = "", size = 0, seed = "", group = false } = {}) {
  const el = h("span", { class: group ? "avatar group" : "avatar", "aria-hidden": "true", dataset: { testid: "avatar" } });
  if (size) {
    el.style.setProperty("width", `${size}px`);
    el.style.setProperty("height", `${size}px`);
    el.style.setProperty("font-size", `${Math.max(9, Math.round(size * 0.36))}px`);
  }
  updateAvatar(el, { url, name, seed });
  return el;
}

/** Show a new picture or name on an avatar made by avatarElement; touches the DOM only on a change. */
export function updateAvatar(el, { url = null, name = "", seed = "" }) {
  const want = `${url || ""}|${name}|${seed}`;
  if (el.dataset.shown === want) return el;
  el.dataset.shown = want;
  el.style.setProperty("--hue", hue(seed || name || "?"));
  if (url) {
    const img = h("img", { class: "avatar-img", src: url, alt: name, decoding: "async", draggable: "false" });
    // A picture that cannot be loaded (gone, offline) falls back to the initials.
    img.addEventListener("error", () => {
      if (img.parentNode !== el) return; // replaced meanwhile
      el.classList.remove("has-image");
      el.replaceChildren(initials(name));
    });
    el.classList.add("has-image");
    el.replaceChildren(img);
  } else {
    el.classList.remove("has-image");
    el.replaceChildren(initials(name));
  }
  return el;
}

/** The name a user goes by here (display name, else username). */
export function displayName(userId) {
  const user = state.users.get(userId);
  return user ? user.display_name || user.username || "?" : "?";
}

/** The avatar of a known user (from state.users; initials until their avatar_url is known). */
export function userAvatar(userId, size = 0) {
  const user = state.users.get(userId);
  return avatarElement({ url: user?.avatar_url || null, name: displayName(userId), size, seed: userId });
}

/** Refresh an avatar made by userAvatar after the user's profile changed. */
export function updateUserAvatar(el, userId) {
  const user = state.users.get(userId);
  return updateAvatar(el, { url: user?.avatar_url || null, name: displayName(userId), seed: userId });
}

/** The avatar of a group (its avatar_url from groups.list / groups.info, else initials). */
export function groupAvatar(group, size = 0) {
  return avatarElement({ url: group?.avatar_url || null, name: group?.name || t("groups.group"), size, seed: group?.group_id || "", group: true });
}

export function updateGroupAvatar(el, group) {
  return updateAvatar(el, { url: group?.avatar_url || null, name: group?.name || t("groups.group"), seed: group?.group_id || "" });
}
