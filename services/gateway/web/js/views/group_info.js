// The group info panel, opened from the group chat's header: the group's avatar, name and
// description (its announcement), its members with their roles and mutes, and leaving. Owners
// and admins also rename the group, edit the description, change or clear its picture, turn
// "only admins can send" and "approval required" on and off, act on members (remove, mute,
// roles, ownership: see canActOn), answer join requests and manage invite links (invites.js);
// the owner may dissolve the group. Beside the chat on a wide screen, over it on a narrow one.

import { state, nameOf } from "../store.js";
import { h, setText, setAttr, syncList, fullTime } from "../dom.js";
import { groupAvatar, updateGroupAvatar, userAvatar, updateUserAvatar } from "./avatar.js";
import { addMembers, leaveGroup, setRole } from "../actions.js";
import { isManager, mutedUntil, loadJoinRequests } from "../group_state.js";
import {
  updateGroup, setGroupAvatar, clearGroupAvatar, removeMember, muteMember, transferOwnership,
  dissolveGroup, refreshInfo, loadInvites,
} from "../group_actions.js";
import { setupInvites, setupRequests } from "./invites.js";
import { confirmAction, toast } from "./notice.js";
import { t, locale } from "../i18n.js";

const ROLE_TEXT = { owner: () => t("groups.role.owner"), admin: () => t("groups.role.admin"), member: () => t("groups.role.member") };
const MY_ROLE_TEXT = { owner: () => t("groups.you_are.owner"), admin: () => t("groups.you_are.admin"), member: () => t("groups.you_are.member") };
const MUTES = [[3600, () => t("groups.mute_1h"), "1h"], [8 * 3600, () => t("groups.mute_8h"), "8h"], [86400, () => t("groups.mute_1d"), "1d"]];
const IMAGE_TYPES = "image/png,image/jpeg,image/gif,image/webp";

/** Whether I (with `myRole`) may remove, mute (and, as owner, promote) `member`. */
export function canActOn(myRole, member) {
  if (member.user_id === state.me?.user_id) return false;
  if (myRole === "owner") return true;
  return myRole === "admin" && member.role === "member";
}

/** Builds the panel into `panel` (the <aside> of index.html); returns render(group). */
export function setupGroupInfo(panel, { onClose }) {
  let group = null;
  const current = () => group;

  // --- the card: avatar, name, description ------------------------------------------------------
  const close = h("button", { type: "button", class: "ghost dismiss", "data-i18n-aria-label": "groups.close_info", dataset: { testid: "group-info-close" } });
  close.addEventListener("click", onClose);
  const avatarSlot = h("span", { class: "gi-avatar" });
  const title = h("h3", { class: "gi-name", dataset: { testid: "group-info-name" } });
  const count = h("p", { class: "muted small", dataset: { testid: "group-info-count" } });
  const description = h("p", { class: "gi-description", dataset: { testid: "group-info-description" } });
  const flags = h("p", { class: "muted small gi-flags", dataset: { testid: "group-info-flags" } });

  // --- editing (owner and admins) ---------------------------------------------------------------
  const nameInput = h("input", { id: "group-edit-name", maxlength: "64", autocomplete: "off", dataset: { testid: "group-edit-name" } });
  const descInput = h("textarea", { id: "group-edit-description", maxlength: "500", rows: "3", "data-i18n-placeholder": "groups.description_placeholder", dataset: { testid: "group-edit-description" } });
  const save = h("button", { type: "submit", class: "small primary", dataset: { testid: "group-save" }, "data-i18n": "common.save" });
  const editForm = h("form", { class: "gi-edit" },
    h("label", { for: "group-edit-name", "data-i18n": "groups.name" }), nameInput,
    h("label", { for: "group-edit-description", "data-i18n": "groups.description" }), descInput,
    h("div", { class: "gi-row-end" }, save));
  const filled = { groupId: null, name: null, description: null };
  editForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!group) return;
    const fields = {};
    const name = nameInput.value.trim();
    if (!name) {
      toast(t("groups.needs_name"));
      nameInput.focus();
      return;
    }
    if (name !== group.name) fields.name = name;
    const text = descInput.value.trim();
    if (text !== (group.description || "")) fields.description = text;
    if (!Object.keys(fields).length) return;
    save.disabled = true;
    const info = await updateGroup(group, fields);
    save.disabled = false;
    if (info) toast(t("groups.updated"));
  });

  const avatarInput = h("input", { type: "file", accept: IMAGE_TYPES, class: "visually-hidden", id: "group-avatar-input", tabindex: "-1", dataset: { testid: "group-avatar-input" } });
  const avatarPick = h("label", { for: "group-avatar-input", class: "button-like small", role: "button", tabindex: "0", "data-i18n": "groups.change_picture" });
  const avatarClear = h("button", { type: "button", class: "small ghost", dataset: { testid: "group-avatar-clear" }, "data-i18n": "groups.remove_picture" });
  avatarInput.addEventListener("change", async () => {
    const file = avatarInput.files?.[0];
    avatarInput.value = "";
    if (file && group) await setGroupAvatar(group, file);
  });
  avatarPick.addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === " ") {
      event.preventDefault();
      avatarInput.click();
    }
  });
  avatarClear.addEventListener("click", () => group && clearGroupAvatar(group));
  const avatarRow = h("div", { class: "gi-avatar-row" }, avatarInput, avatarPick, avatarClear);

  const everyoneMuted = h("input", { type: "checkbox", id: "group-everyone-muted", dataset: { testid: "group-everyone-muted" } });
  const approval = h("input", { type: "checkbox", id: "group-approval-required", dataset: { testid: "group-approval-required" } });
  const toggle = (box, field) => box.addEventListener("change", async () => {
    if (!group) return;
    box.disabled = true;
    await updateGroup(group, { [field]: box.checked });
    box.disabled = false;
    box.checked = Boolean(state.groups.get(group.group_id)?.[field]);
  });
  toggle(everyoneMuted, "everyone_muted");
  toggle(approval, "approval_required");
  const settings = h("div", { class: "gi-settings" },
    h("label", { class: "gi-switch", for: "group-everyone-muted" }, everyoneMuted,
      h("span", {}, h("strong", { "data-i18n": "groups.only_admins" }), h("span", { class: "muted small", "data-i18n": "groups.only_admins_hint" }))),
    h("label", { class: "gi-switch", for: "group-approval-required" }, approval,
      h("span", {}, h("strong", { "data-i18n": "groups.approval" }), h("span", { class: "muted small", "data-i18n": "groups.approval_hint" }))));
  const manage = h("section", { class: "gi-section", "data-i18n-aria-label": "groups.settings_label" },
    h("h3", { "data-i18n": "groups.settings" }), editForm, avatarRow, settings);

  // --- members ----------------------------------------------------------------------------------
  const members = h("ul", { id: "group-members", class: "list gi-members", dataset: { testid: "group-members" } });
  const select = h("select", { id: "add-member-select", dataset: { testid: "add-member-select" }, "data-i18n-aria-label": "groups.contact_to_add" });
  const addButton = h("button", { type: "submit", class: "small", dataset: { testid: "add-member" }, "data-i18n": "groups.add" });
  const addForm = h("form", { id: "add-member-form", class: "inline-form" }, h("label", { for: "add-member-select", "data-i18n": "groups.add_contact" }), select, addButton);
  addForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!group || !select.value) return;
    addButton.disabled = true;
    await addMembers(group, [select.value]);
    addButton.disabled = false;
  });
  const membersTitle = h("h3");
  const membersSection = h("section", { class: "gi-section", "data-i18n-aria-label": "groups.members" }, membersTitle, addForm, members);

  const requests = setupRequests();
  const invites = setupInvites();

  // --- leaving, dissolving ----------------------------------------------------------------------
  const leave = h("button", { type: "button", class: "danger small", id: "leave-group", dataset: { testid: "leave-group" }, "data-i18n": "groups.leave" });
  leave.addEventListener("click", () => group && leaveGroup(group));
  const dissolve = h("button", { type: "button", class: "danger small", dataset: { testid: "dissolve-group" }, "data-i18n": "groups.dissolve" });
  dissolve.addEventListener("click", async () => {
    if (!group) return;
    const target = group;
    const sure = await confirmAction({
      title: t("groups.dissolve_title", { name: target.name }),
      text: t("groups.dissolve_text"),
      ok: t("groups.dissolve_ok"),
    });
    if (sure) await dissolveGroup(target);
  });
  const footer = h("div", { class: "gi-footer" }, leave, dissolve);

  panel.replaceChildren(
    h("header", { class: "gi-head" }, h("h2", { "data-i18n": "groups.info" }), close),
    h("div", { class: "gi-body" },
      h("div", { class: "gi-card" }, avatarSlot, title, count, description, flags),
      manage, requests.section, membersSection, invites.section, footer));

  let shownFor = null;
  return function renderGroupInfo(shown) {
    group = shown;
    if (!group) {
      shownFor = null;
      return;
    }
    const manager = isManager(group);
    if (shownFor !== group.group_id) { // fresh settings, link uses and requests for what is shown
      shownFor = group.group_id;
      panel.scrollTop = 0;
      refreshInfo(group);
      if (manager && group.invites !== undefined) loadInvites(group);
      if (manager) loadJoinRequests(group).catch(() => {});
    }
    const owner = group.role === "owner";
    const list = group.members || [];

    if (!avatarSlot.firstChild) avatarSlot.append(groupAvatar(group, 72));
    else updateGroupAvatar(avatarSlot.firstChild, group);
    setText(title, group.name);
    const total = group.members ? list.length : group.member_count;
    const you = (MY_ROLE_TEXT[group.role] || MY_ROLE_TEXT.member)();
    setText(count, total ? t("groups.count_and_role", { members: t("groups.member_count", { count: total }), role: you }) : "");
    setText(description, group.description || (manager ? t("groups.no_description") : ""));
    description.classList.toggle("muted", !group.description);
    const notes = [];
    if (group.everyone_muted) notes.push(t("groups.only_admins"));
    if (group.approval_required) notes.push(t("groups.needs_approval"));
    setText(flags, notes.join(" · "));

    manage.hidden = !manager;
    if (manager) fillEditor(group);
    avatarClear.hidden = !group.avatar_url;
    if (!everyoneMuted.disabled) everyoneMuted.checked = Boolean(group.everyone_muted);
    if (!approval.disabled) approval.checked = Boolean(group.approval_required);

    requests.section.hidden = !manager;
    if (manager) requests.render(group);
    invites.section.hidden = !manager;
    if (manager) invites.render(group);

    setText(membersTitle, group.members ? t("groups.members_count", { count: list.length }) : t("groups.members"));
    syncList(members, list, (m) => m.user_id, (m) => createMember(current, m), (el, m) => updateMember(el, group, m));
    addForm.hidden = !manager || !fillCandidates(select, list);
    dissolve.hidden = !owner;
  };

  function fillEditor(shown) {
    if (filled.groupId !== shown.group_id) {
      Object.assign(filled, { groupId: shown.group_id, name: null, description: null });
    }
    if (filled.name !== shown.name && document.activeElement !== nameInput) {
      nameInput.value = shown.name || "";
      filled.name = shown.name;
    }
    const text = shown.description || "";
    if (filled.description !== text && document.activeElement !== descInput) {
      descInput.value = text;
      filled.description = text;
    }
  }
}

/** The contacts not in the group yet, offered in `select`; returns how many there are. */
function fillCandidates(select, list) {
  const inGroup = new Set(list.map((m) => m.user_id));
  const candidates = [...state.friends.keys()].filter((id) => !inGroup.has(id));
  const signature = `${locale()}|${candidates.join(",")}`;
  if (select.dataset.signature !== signature) {
    select.dataset.signature = signature;
    select.replaceChildren(...(candidates.length
      ? candidates.map((id) => h("option", { value: id }, nameOf(id)))
      : [h("option", { value: "" }, t("groups.no_contacts_to_add"))]));
  }
  return candidates.length;
}

// --- one member ----------------------------------------------------------------------------------
function createMember(currentGroup, member) {
  const more = h("button", { type: "button", class: "ghost small gi-more", "aria-expanded": "false", dataset: { testid: "member-actions" } }, t("groups.manage"));
  const actions = h("div", { class: "gi-member-actions", hidden: true });
  more.addEventListener("click", () => {
    actions.hidden = !actions.hidden;
    more.setAttribute("aria-expanded", String(!actions.hidden));
  });
  const el = h("li", { class: "gi-member", dataset: { testid: "group-member", userId: member.user_id } },
    h("div", { class: "row" },
      userAvatar(member.user_id),
      h("span", { class: "who" }, h("span", { class: "name" }), h("span", { class: "role muted small" })),
      more),
    actions);
  el.currentGroup = currentGroup;
  return el;
}

function updateMember(el, group, member) {
  const user = state.users.get(member.user_id);
  const mine = member.user_id === state.me?.user_id;
  const shownName = user?.display_name || member.display_name || member.username;
  setText(el.querySelector(".name"), mine ? t("groups.name_you", { name: shownName }) : shownName);
  const until = mutedUntil(member);
  const role = ROLE_TEXT[member.role]?.() || member.role;
  const line = t("groups.member_line", { handle: `@${member.username}`, role });
  setText(el.querySelector(".role"), until ? t("groups.member_line_muted", { line, time: fullTime(until) }) : line);
  setAttr(el, "data-role", member.role);
  setAttr(el, "data-muted", until ? "true" : "false");
  updateUserAvatar(el.querySelector(".avatar"), member.user_id);

  const allowed = canActOn(group.role, member);
  const more = el.querySelector(".gi-more");
  const actions = el.querySelector(".gi-member-actions");
  more.hidden = !allowed;
  if (!allowed) actions.hidden = true;
  setAttr(more, "aria-label", t("groups.manage_who", { name: shownName }));
  const want = allowed ? `${group.role}|${member.role}|${until ? "muted" : ""}` : "";
  if (actions.dataset.want === want) return;
  actions.dataset.want = want;
  actions.replaceChildren(...(allowed ? memberButtons(el.currentGroup, group.role, member, Boolean(until), shownName) : []));
}

function memberButtons(currentGroup, myRole, member, muted, shownName) {
  const button = (testid, text, fn, extra = "") => {
    const b = h("button", { type: "button", class: `small ${extra}`.trim(), dataset: { testid } }, text);
    b.addEventListener("click", async () => {
      const group = currentGroup();
      if (!group) return;
      b.disabled = true;
      await fn(group);
      b.disabled = false;
    });
    return b;
  };
  const buttons = [];
  if (muted) buttons.push(button("member-unmute", t("groups.unmute"), (g) => muteMember(g, member.user_id, null)));
  else for (const [seconds, text, key] of MUTES) buttons.push(button(`member-mute-${key}`, text(), (g) => muteMember(g, member.user_id, seconds)));
  if (myRole === "owner") {
    if (member.role === "admin") buttons.push(button("member-make-member", t("groups.make_member"), (g) => setRole(g, member.user_id, "member")));
    else buttons.push(button("member-make-admin", t("groups.make_admin"), (g) => setRole(g, member.user_id, "admin")));
    buttons.push(button("member-transfer", t("groups.make_owner"), async (g) => {
      const sure = await confirmAction({
        title: t("groups.transfer_title", { name: shownName }),
        text: t("groups.transfer_text"),
        ok: t("groups.transfer_ok"),
      });
      if (sure) await transferOwnership(g, member.user_id);
    }));
  }
  buttons.push(button("member-remove", t("groups.remove"), async (g) => {
    const sure = await confirmAction({ title: t("groups.remove_title", { name: shownName, group: g.name }), text: t("groups.remove_text"), ok: t("groups.remove") });
    if (sure) await removeMember(g, member.user_id);
  }, "danger"));
  return buttons;
}
