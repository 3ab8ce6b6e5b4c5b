// Mentions in groups. In a bubble: the text with each "@username" of a mentioned member set off,
// mine (I am mentioned) highlighted. In the composer: typing "@" offers the group's members
// (groups.members), arrow keys and Enter or Tab pick one; the message carries the ids of the
// members whose @username it contains.

import { state } from "../store.js";
import { h, setText } from "../dom.js";
import { loadMembers } from "../actions.js";

const TOKEN = /@([A-Za-z0-9_.-]+)/g;
const MAX_SHOWN = 8;

/** The message's text into `el`, mentions set off. */
export function fillText(el, text, message) {
  const ids = message?.mentions || [];
  if (!ids.length) {
    setText(el, text);
    return;
  }
  const byName = new Map();
  for (const id of ids) {
    const username = id === state.me?.user_id ? state.me.username : state.users.get(id)?.username;
    if (username) byName.set(username.toLowerCase(), id);
  }
  const parts = [];
  let last = 0;
  for (const match of text.matchAll(TOKEN)) {
    let name = match[1];
    while (name && !byName.has(name.toLowerCase()) && /[.-]$/.test(name)) name = name.slice(0, -1);
    const id = byName.get(name.toLowerCase());
    if (!id) continue;
    parts.push(text.slice(last, match.index));
    const me = id === state.me?.user_id;
    parts.push(h("span", { class: me ? "mention me" : "mention", dataset: { testid: "mention", userId: id } }, `@${name}`));
    last = match.index + 1 + name.length;
  }
  parts.push(text.slice(last));
  el.replaceChildren(...parts.filter((part) => part !== ""));
}

/** The members (user ids) whose @username `text` contains. */
export function mentionedIn(conv, text) {
  const members = state.groups.get(conv.groupId)?.members || [];
  const ids = [];
  const words = new Set([...text.matchAll(TOKEN)].flatMap((m) => {
    const name = m[1].toLowerCase();
    return [name, name.replace(/[.-]+$/, "")];
  }));
  for (const member of members) {
    if (member.user_id !== state.me?.user_id && words.has(member.username.toLowerCase())) ids.push(member.user_id);
  }
  return ids;
}

/** Completion of @names in the composer `input`, drawn into the list `box`. */
export function setupMentionCompletion(input, box, currentConv) {
  let options = [];
  let active = 0;
  let token = null;

  function tokenAtCaret() {
    const upto = input.value.slice(0, input.selectionStart ?? input.value.length);
    const match = /(^|\s)@([A-Za-z0-9_.-]*)$/.exec(upto);
    return match ? { start: upto.length - match[2].length - 1, end: upto.length, query: match[2].toLowerCase() } : null;
  }

  function close() {
    options = [];
    token = null;
    box.hidden = true;
    box.replaceChildren();
    input.removeAttribute("aria-activedescendant");
    input.setAttribute("aria-expanded", "false");
  }

  function refresh() {
    const conv = currentConv();
    token = conv?.kind === "group" ? tokenAtCaret() : null;
    if (!token) return close();
    const group = state.groups.get(conv.groupId);
    if (group && !group.members) {
      loadMembers(group).then(() => refresh());
      return close();
    }
    const name = (member) => state.users.get(member.user_id)?.display_name || member.username;
    options = (group?.members || [])
      .filter((m) => m.user_id !== state.me?.user_id)
      .filter((m) => m.username.toLowerCase().startsWith(token.query) || name(m).toLowerCase().startsWith(token.query))
      .slice(0, MAX_SHOWN);
    if (!options.length) return close();
    active = Math.min(active, options.length - 1);
    box.replaceChildren(...options.map((member, i) => {
      const option = h("li", {
        id: `mention-option-${i}`, role: "option", class: "mention-option", "aria-selected": String(i === active),
        dataset: { testid: "mention-option", userId: member.user_id },
      }, h("strong", {}, name(member)), h("span", { class: "muted small" }, ` @${member.username}`));
      option.addEventListener("mousedown", (event) => {
        event.preventDefault(); // keep the focus in the composer
        pick(member);
      });
      return option;
    }));
    box.hidden = false;
    input.setAttribute("aria-expanded", "true");
    input.setAttribute("aria-activedescendant", `mention-option-${active}`);
  }

  function pick(member) {
    if (!token) return;
    const insert = `@${member.username} `;
    input.value = input.value.slice(0, token.start) + insert + input.value.slice(token.end);
    const caret = token.start + insert.length;
    input.setSelectionRange(caret, caret);
    close();
    input.dispatchEvent(new Event("input")); // autosize, typing
    input.focus();
  }

  input.setAttribute("aria-autocomplete", "list");
  input.setAttribute("aria-controls", box.id);
  input.addEventListener("input", () => {
    active = 0;
    refresh();
  });
  input.addEventListener("click", refresh);
  input.addEventListener("blur", () => setTimeout(close, 150));

  /** Arrow keys, Enter, Tab and Escape while the list is open; true when the key was used. */
  return function handleKey(event) {
    if (box.hidden || !options.length) return false;
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      active = (active + (event.key === "ArrowDown" ? 1 : options.length - 1)) % options.length;
      refresh();
    } else if (event.key === "Enter" || event.key === "Tab") {
      pick(options[active]);
    } else if (event.key === "Escape") {
      close();
    } else {
      return false;
    }
    event.preventDefault();
    return true;
  };
}
