// Groups: the "new group" dialog (a name and contacts to invite), joining by an invite link
// (join.js), and in an open group the header's "Info" button with the group info panel
// (group_info.js): open beside the chat on a wide screen unless the user closed it, over the
// chat on a narrow one. Group administration's pushes are handled by group_state.js.

import { state, openConv, nameOf, changed } from "../store.js";
import { h, setText, setAttr } from "../dom.js";
import { createGroup, loadMembers } from "../actions.js";
import { describe } from "../errors.js";
import { userAvatar } from "./avatar.js";
import { listenGroupAdmin, onGroupNotice, pendingRequests } from "../group_state.js";
import { setupGroupInfo } from "./group_info.js";
import { setupJoin } from "./join.js";
import { toast } from "./notice.js";
import { t } from "../i18n.js";

const WIDE = "(min-width: 1000px)";
const PANEL_KEY = "parley.groupInfo"; // "closed" when the user closed the panel on a wide screen

export function setupGroups() {
  const dialog = document.getElementById("group-dialog");
  const form = document.getElementById("group-form");
  const name = document.getElementById("group-name");
  const options = document.getElementById("group-options");
  const optionsEmpty = document.getElementById("group-options-empty");
  const error = document.getElementById("group-error");
  const create = document.getElementById("create-group");

  document.getElementById("new-group").addEventListener("click", () => {
    name.value = "";
    setText(error, "");
    const friends = [...state.friends.keys()].sort((a, b) => nameOf(a).localeCompare(nameOf(b)));
    optionsEmpty.hidden = friends.length > 0;
    options.replaceChildren(...friends.map((userId) => {
      const id = `group-option-${userId}`;
      const user = state.users.get(userId);
      return h("li", {},
        h("label", { class: "row", for: id, dataset: { testid: "group-member-option", userId } },
          h("input", { type: "checkbox", id, value: userId }), userAvatar(userId),
          h("span", { class: "who" }, h("span", { class: "name" }, nameOf(userId)),
            h("span", { class: "sub muted small" }, `@${user?.username || ""}`))));
    }));
    dialog.showModal();
    name.focus();
  });
  document.getElementById("group-cancel").addEventListener("click", () => dialog.close());
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const groupName = name.value.trim();
    if (!groupName) {
      setText(error, t("groups.need_name"));
      name.focus();
      return;
    }
    const members = [...options.querySelectorAll("input:checked")].map((box) => box.value);
    create.disabled = true;
    try {
      await createGroup(groupName, members);
      dialog.close();
    } catch (failure) {
      setText(error, describe(failure, "groups.create"));
    } finally {
      create.disabled = false;
    }
  });

  listenGroupAdmin();
  onGroupNotice(toast);
  const renderJoin = setupJoin();

  // --- the info panel of an open group ---------------------------------------------------------
  const toggle = document.getElementById("group-info");
  const panel = document.getElementById("group-panel");
  const badge = h("span", { class: "badge", dataset: { testid: "group-info-badge" }, hidden: true });
  toggle.replaceChildren(h("span", { "data-i18n": "groups.info_button" }), badge);
  setAttr(toggle, "data-testid", "group-info-toggle");
  const wide = matchMedia(WIDE);

  function show(open, remember) {
    panel.hidden = !open;
    toggle.setAttribute("aria-expanded", String(open));
    if (remember && wide.matches) {
      if (open) localStorage.removeItem(PANEL_KEY);
      else localStorage.setItem(PANEL_KEY, "closed");
    }
    if (open) {
      const group = currentGroup();
      if (group) loadMembers(group);
    }
    changed();
  }
  toggle.addEventListener("click", () => show(panel.hidden, true));
  const renderInfo = setupGroupInfo(panel, {
    onClose: () => {
      show(false, true);
      toggle.focus();
    },
  });
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && !panel.hidden && !wide.matches && !document.querySelector("dialog[open]")) {
      event.stopImmediatePropagation();
      show(false, true);
    }
  }, true);

  let shownGroup = null;
  return function renderGroups() {
    renderJoin();
    const group = currentGroup();
    toggle.hidden = !group || Boolean(group.ended);
    if (!group || group.ended) {
      panel.hidden = true;
      shownGroup = null;
      renderInfo(null);
      return;
    }
    if (shownGroup !== group.group_id) {
      shownGroup = group.group_id;
      const open = wide.matches && localStorage.getItem(PANEL_KEY) !== "closed";
      panel.hidden = !open;
      toggle.setAttribute("aria-expanded", String(open));
    }
    if (!group.members && !group.loading) {
      group.loading = true;
      loadMembers(group).finally(() => (group.loading = false));
    }
    const waiting = pendingRequests(group.group_id);
    badge.hidden = !waiting;
    setText(badge, String(waiting));
    setAttr(toggle, "aria-label", waiting ? t("groups.info_waiting", { count: waiting }) : t("groups.info"));
    if (!panel.hidden) renderInfo(group);
  };
}

function currentGroup() {
  const conv = openConv();
  return conv?.kind === "group" ? state.groups.get(conv.groupId) || null : null;
}
