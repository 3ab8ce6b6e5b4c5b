// Groups: the "new group" dialog (a name and contacts to invite) and, in an open group, the
// members panel (roles, adding contacts, making admins for the owner, leaving).

import { state, openConv, nameOf } from "../store.js";
import { h, setText, setAttr, syncList, avatar } from "../dom.js";
import { createGroup, addMembers, leaveGroup, setRole, loadMembers } from "../actions.js";
import { describe } from "../errors.js";

const ROLE_TEXT = { owner: "Owner", admin: "Admin", member: "Member" };

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
          h("input", { type: "checkbox", id, value: userId }), avatar(userId, nameOf(userId)),
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
      setText(error, "Please give the group a name.");
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

  // --- the members panel of an open group ------------------------------------------------------
  const toggle = document.getElementById("group-info");
  const panel = document.getElementById("group-panel");
  const list = document.getElementById("group-members");
  const addForm = document.getElementById("add-member-form");
  const select = document.getElementById("add-member-select");
  const addButton = document.getElementById("add-member");
  const leave = document.getElementById("leave-group");

  toggle.addEventListener("click", () => {
    panel.hidden = !panel.hidden;
    toggle.setAttribute("aria-expanded", String(!panel.hidden));
    const group = currentGroup();
    if (!panel.hidden && group) loadMembers(group);
  });
  addForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const group = currentGroup();
    if (!group || !select.value) return;
    addButton.disabled = true;
    await addMembers(group, [select.value]);
    addButton.disabled = false;
  });
  leave.addEventListener("click", () => {
    const group = currentGroup();
    if (group) leaveGroup(group);
  });

  let shownGroup = null;
  return function renderGroups() {
    const group = currentGroup();
    toggle.hidden = !group;
    if (!group) {
      panel.hidden = true;
      shownGroup = null;
      return;
    }
    if (shownGroup !== group.group_id) {
      shownGroup = group.group_id;
      panel.hidden = false; // open at first: who is here, and how to add or leave
      toggle.setAttribute("aria-expanded", "true");
    }
    if (!group.members && !group.loading) {
      group.loading = true;
      loadMembers(group).finally(() => (group.loading = false));
    }
    const members = group.members || [];
    syncList(list, members, (m) => m.user_id, (m) => createMember(group, m), (el, m) => updateMember(el, group, m));
    const manager = group.role === "owner" || group.role === "admin";
    addForm.hidden = !manager;
    const inGroup = new Set(members.map((m) => m.user_id));
    const candidates = [...state.friends.keys()].filter((id) => !inGroup.has(id));
    const signature = candidates.join(",");
    if (select.dataset.signature !== signature) {
      select.dataset.signature = signature;
      select.replaceChildren(...(candidates.length
        ? candidates.map((id) => h("option", { value: id }, nameOf(id)))
        : [h("option", { value: "" }, "No contacts to add")]));
    }
    select.disabled = addButton.disabled = !candidates.length;
  };
}

function currentGroup() {
  const conv = openConv();
  return conv?.kind === "group" ? state.groups.get(conv.groupId) || null : null;
}

function createMember(group, member) {
  return h("li", { class: "row", dataset: { testid: "group-member", userId: member.user_id } },
    avatar(member.user_id, member.username),
    h("span", { class: "who" }, h("span", { class: "name" }), h("span", { class: "handle muted small" }),
      h("span", { class: "role muted small" })),
    h("span", { class: "actions" }));
}

function updateMember(el, group, member) {
  const user = state.users.get(member.user_id);
  const mine = member.user_id === state.me?.user_id;
  const name = mine ? `${member.username} (you)` : user?.display_name || member.username;
  setText(el.querySelector(".name"), name);
  setText(el.querySelector(".handle"), !mine && name !== member.username ? `@${member.username}` : "");
  setText(el.querySelector(".role"), ROLE_TEXT[member.role] || member.role);
  setAttr(el, "data-role", member.role);
  const actions = el.querySelector(".actions");
  const canPromote = group.role === "owner" && member.role !== "owner";
  const want = canPromote ? member.role : "";
  if (actions.dataset.want === want) return;
  actions.dataset.want = want;
  if (!canPromote) {
    actions.replaceChildren();
    return;
  }
  const next = member.role === "admin" ? "member" : "admin";
  const button = h("button", { type: "button", class: "link small", dataset: { testid: "set-role" } },
    next === "admin" ? "Make admin" : "Remove admin");
  button.addEventListener("click", () => setRole(group, member.user_id, next));
  actions.replaceChildren(button);
}
