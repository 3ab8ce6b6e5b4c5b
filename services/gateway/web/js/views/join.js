// Joining a group by an invite link. Opening the page at `/#join=<code>` (once logged in), or
// pasting a link or code into "Join with link", shows what the group is (groups.invites.preview)
// and a Join button (groups.join): "joined" opens the group's chat, "requested" says that the
// request was sent (an owner or admin answers it; a decline comes as a toast, an acceptance
// closes the dialog).

import { state } from "../store.js";
import { h, setText } from "../dom.js";
import { groupAvatar } from "./avatar.js";
import { codeFrom, previewInvite, joinByCode, describeGroupError } from "../group_actions.js";
import { toast } from "./notice.js";
import { t } from "../i18n.js";

export function setupJoin() {
  const codeInput = h("input", {
    id: "join-code-input", autocomplete: "off", autocapitalize: "none", spellcheck: "false",
    "data-i18n-placeholder": "join.placeholder", dataset: { testid: "join-code-input" },
  });
  const lookup = h("button", { type: "submit", class: "primary", dataset: { testid: "join-lookup" }, "data-i18n": "join.show_group" });
  const askStep = h("div", { class: "join-step" },
    h("label", { for: "join-code-input", "data-i18n": "join.code_label" }), codeInput,
    h("p", { class: "muted small", "data-i18n": "join.paste_hint" }));

  const avatarSlot = h("span", { class: "join-avatar" });
  const name = h("h3", { class: "join-name", dataset: { testid: "join-group-name" } });
  const about = h("p", { class: "join-description" });
  const facts = h("p", { class: "muted small", dataset: { testid: "join-group-facts" } });
  const previewStep = h("div", { class: "join-step join-preview", dataset: { testid: "join-preview" } }, avatarSlot, name, about, facts);

  const status = h("p", { class: "join-status", role: "status", dataset: { testid: "join-status" } });
  const error = h("p", { class: "form-error", role: "alert", dataset: { testid: "join-error" } });
  const join = h("button", { type: "button", class: "primary", dataset: { testid: "join-button" } }, t("join.join"));
  const cancel = h("button", { type: "button", dataset: { testid: "join-cancel" } }, t("common.cancel"));
  const form = h("form", { novalidate: true },
    h("h2", { id: "join-dialog-title", "data-i18n": "join.title" }), askStep, previewStep, status, error,
    h("div", { class: "dialog-actions" }, cancel, lookup, join));
  const dialog = h("dialog", { class: "dialog join-dialog", "aria-labelledby": "join-dialog-title", dataset: { testid: "join-dialog" } }, form);
  (document.getElementById("app-screen") || document.body).append(dialog);

  let code = "";
  let asked = null; // {groupId, name}: the request sent, while its answer is awaited here
  function step(which) {
    askStep.hidden = which !== "ask";
    lookup.hidden = which !== "ask";
    previewStep.hidden = which === "ask";
    join.hidden = which !== "preview";
    setText(cancel, which === "requested" ? t("common.close") : t("common.cancel"));
  }

  async function show(wanted) {
    code = wanted;
    asked = null;
    setText(error, "");
    setText(status, "");
    if (!dialog.open) dialog.showModal();
    if (!code) {
      step("ask");
      codeInput.value = "";
      codeInput.focus();
      return;
    }
    step("loading");
    setText(name, t("join.looking_up"));
    setText(about, "");
    setText(facts, "");
    avatarSlot.replaceChildren();
    join.hidden = true;
    try {
      const group = await previewInvite(code);
      if (code !== wanted) return;
      avatarSlot.replaceChildren(groupAvatar(group, 72));
      setText(name, group.name);
      setText(about, group.description || "");
      about.hidden = !group.description;
      const count = t("groups.member_count", { count: group.member_count });
      setText(facts, group.approval_required ? t("join.facts_approval", { members: count }) : count);
      const already = state.groups.has(group.group_id);
      step("preview");
      setText(join, already ? t("join.open") : group.approval_required ? t("join.ask") : t("join.join"));
      join.focus();
    } catch (failure) {
      if (code !== wanted) return;
      step("ask");
      codeInput.value = wanted;
      setText(error, describeGroupError(failure, "groups.invites.preview"));
    }
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (!askStep.hidden) {
      const found = codeFrom(codeInput.value);
      if (!found) {
        setText(error, t("join.not_a_link"));
        codeInput.focus();
        return;
      }
      show(found);
    }
  });
  join.addEventListener("click", async () => {
    join.disabled = true;
    setText(error, "");
    try {
      const reply = await joinByCode(code);
      if (reply.status === "requested") {
        asked = { groupId: reply.group_id, name: name.textContent };
        step("requested");
        setText(status, t("join.requested"));
      } else {
        dialog.close();
        toast(t("join.joined", { name: name.textContent }));
      }
    } catch (failure) {
      setText(error, describeGroupError(failure, "groups.join"));
    } finally {
      join.disabled = false;
    }
  });
  cancel.addEventListener("click", () => dialog.close());
  document.getElementById("join-group")?.addEventListener("click", () => show(""));
  window.addEventListener("hashchange", () => takeLinkFromAddress());

  /** `#join=<code>` in the address, once logged in: taken out of the address and shown. */
  function takeLinkFromAddress() {
    if (!state.bound || !location.hash.startsWith("#join=")) return;
    const found = codeFrom(location.hash);
    history.replaceState(null, "", location.pathname + location.search);
    if (found) show(found);
  }

  return function renderJoin() {
    takeLinkFromAddress();
    // An admin let me in (push group.added) while the dialog still says "Request sent".
    if (dialog.open && asked && state.groups.has(asked.groupId)) {
      dialog.close();
      toast(t("join.joined", { name: asked.name }));
      asked = null;
    }
  };
}
