// The actions on one message: a small toolbar shown over the message under the mouse (desktop),
// after a long press (touch) or when something in the message has the keyboard focus. Reply,
// react (a picker of common emoji, the whole emoji picker, or any one typed), edit (own text
// messages, in place), delete for me, recall (own, within 10 minutes), add an image to my
// stickers. There is one toolbar, moved to the message it serves: a thousand messages do not
// carry a thousand sets of buttons.

import { changed, touch } from "../store.js";
import { h, icon } from "../dom.js";
import { allowed, editMessage, hideMessage, toggleReaction } from "../interactions.js";
import { recall } from "../actions.js";
import { COMMON_EMOJI } from "./reactions.js";
import { emojiPicker } from "./emoji_picker.js";
import { addToStickers, canAddSticker, stickerIcon } from "./stickers.js";
import { t, msgKey, applyTranslations, onLocaleChange } from "../i18n.js";

const LONG_PRESS_MS = 450;

/**
 * `ol`: the list of messages; `currentConv()`: the conversation shown; `onReply(conv, message)`:
 * the composer takes the message to answer.
 */
export function setupMessageActions(ol, currentConv, onReply) {
  let target = null; // the li the toolbar serves
  const button = (name, label, iconName) => h("button", {
    type: "button", class: "ghost tool", "data-i18n-title": label, "data-i18n-aria-label": label, dataset: { testid: `action-${name}`, action: name },
  }, icon(iconName));
  const buttons = {
    reply: button("reply", msgKey("actions.reply"), "reply"),
    react: button("react", msgKey("actions.react"), "smile"),
    edit: button("edit", msgKey("actions.edit"), "edit"),
    hide: button("hide", msgKey("actions.hide"), "trash"),
    recall: button("recall", msgKey("actions.recall"), "undo"),
    sticker: button("sticker", msgKey("actions.add_sticker"), "smile"),
  };
  buttons.sticker.replaceChildren(stickerIcon());
  const more = h("button", { type: "button", class: "ghost emoji more", "data-i18n-aria-label": "actions.more_emoji", "data-i18n-title": "actions.more_emoji", dataset: { testid: "emoji-more" } }, "＋");
  const custom = h("input", {
    class: "emoji-input", maxlength: "32", "data-i18n-placeholder": "actions.other_emoji", "data-i18n-aria-label": "actions.another_emoji",
    dataset: { testid: "emoji-input" }, autocomplete: "off",
  });
  const options = COMMON_EMOJI.map((emoji) => h("button", { type: "button", class: "ghost emoji", dataset: { testid: "emoji-option", emoji } }, emoji));
  const picker = h("div", { class: "emoji-picker", role: "group", "data-i18n-aria-label": "actions.pick_reaction", hidden: true, dataset: { testid: "emoji-picker" } },
    ...options, more, custom);
  const toolbar = h("div", { class: "msg-toolbar", role: "toolbar", "data-i18n-aria-label": "actions.label", dataset: { testid: "message-actions" } },
    ...Object.values(buttons), picker);
  const translate = () => { // the toolbar is out of the document between uses: translated here
    applyTranslations(toolbar);
    for (const option of options) option.setAttribute("aria-label", t("actions.react_with", { emoji: option.dataset.emoji }));
  };
  translate();
  onLocaleChange(translate);

  function current() {
    const conv = currentConv();
    const message = target && conv?.messages.get(target.dataset.key);
    return message ? { conv, message } : null;
  }

  function show(li) {
    if (li.classList.contains("editing")) return;
    const conv = currentConv();
    const found = conv?.messages.get(li.dataset.key);
    // End-to-end encrypted: no reactions (the server would see them), no sticker from an image it cannot read.
    const can = found ? { ...allowed(found), sticker: canAddSticker(found) && !found.file?.secret } : {};
    if (conv?.encryptedAt) can.react = false;
    if (!Object.values(can).some(Boolean)) return hide();
    for (const [name, el] of Object.entries(buttons)) el.hidden = !can[name]; // what it allows now
    if (li === target && toolbar.isConnected) return;
    picker.hidden = true;
    target = li;
    li.querySelector(".bubble").append(toolbar); // placed beside the bubble (style.css)
  }

  function hide() {
    if (toolbar.contains(document.activeElement)) document.activeElement.blur();
    target = null;
    picker.hidden = true;
    toolbar.remove();
  }

  ol.addEventListener("mouseover", (event) => {
    const li = event.target.closest?.("li.msg");
    if (li && !toolbar.contains(event.target)) show(li);
  });
  ol.addEventListener("mouseleave", () => {
    if (picker.hidden && !toolbar.contains(document.activeElement)) hide();
  });
  ol.addEventListener("focusin", (event) => {
    const li = event.target.closest?.("li.msg");
    if (li && !toolbar.contains(event.target)) show(li);
  });

  // Touch: a long press shows the toolbar (and no context menu or text selection).
  let press = null;
  ol.addEventListener("pointerdown", (event) => {
    if (event.pointerType === "mouse") return;
    const li = event.target.closest("li.msg");
    if (!li || toolbar.contains(event.target)) return;
    clearTimeout(press);
    press = setTimeout(() => show(li), LONG_PRESS_MS);
  });
  for (const type of ["pointerup", "pointercancel", "pointermove"]) {
    ol.addEventListener(type, (event) => {
      if (type !== "pointermove" || Math.hypot(event.movementX, event.movementY) > 4) clearTimeout(press);
    });
  }
  ol.addEventListener("contextmenu", (event) => {
    const li = event.target.closest("li.msg");
    if (li && matchMedia("(pointer: coarse)").matches) {
      event.preventDefault();
      show(li);
    }
  });
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && target) hide();
  });
  document.addEventListener("pointerdown", (event) => {
    if (target && !target.contains(event.target)) hide();
  });

  toolbar.addEventListener("click", (event) => {
    const found = current();
    const el = event.target.closest("button");
    if (!found || !el) return;
    const { conv, message } = found;
    if (el.dataset.emoji) {
      toggleReaction(conv, message, el.dataset.emoji);
      hide();
      return;
    }
    if (el === more) { // the whole emoji picker; the pick reacts to this message
      const anchor = target.querySelector(".bubble") || target;
      emojiPicker().open(anchor, (emoji) => toggleReaction(conv, message, emoji));
      hide();
      return;
    }
    const action = el.dataset.action;
    if (action === "react") {
      picker.hidden = !picker.hidden;
      if (!picker.hidden) picker.querySelector("button").focus();
      return;
    }
    const li = target;
    hide();
    if (action === "reply") onReply(conv, message);
    else if (action === "edit") startEditing(li, conv, message);
    else if (action === "hide") hideMessage(conv, message);
    else if (action === "recall") recall(conv, message);
    else if (action === "sticker") addToStickers(message);
  });
  custom.addEventListener("keydown", (event) => {
    if (event.key !== "Enter") return;
    event.preventDefault();
    const found = current();
    const emoji = custom.value.trim();
    if (found && emoji) toggleReaction(found.conv, found.message, emoji);
    custom.value = "";
    hide();
  });

  return { hide };
}

/** Edit my message in place: Enter (or Save) sends the new text, Escape (or Cancel) leaves it. */
function startEditing(li, conv, message) {
  const text = li.querySelector(".text");
  if (!text) return;
  li.classList.add("editing");
  const input = h("textarea", { class: "edit-input", rows: "2", maxlength: "4000", "aria-label": t("actions.edit_message"), dataset: { testid: "edit-input" } });
  input.value = message.text;
  const save = h("button", { type: "button", class: "small primary", dataset: { testid: "edit-save" } }, t("common.save"));
  const cancel = h("button", { type: "button", class: "small ghost", dataset: { testid: "edit-cancel" } }, t("common.cancel"));
  const editor = h("div", { class: "editor" }, input, h("div", { class: "editor-actions" }, cancel, save));
  text.hidden = true;
  text.after(editor);
  input.focus();
  input.setSelectionRange(input.value.length, input.value.length);

  const close = () => {
    editor.remove();
    text.hidden = false;
    li.classList.remove("editing");
    touch(conv, message); // draw what the text is now
    changed();
  };
  const submit = async () => {
    const value = input.value.trim();
    if (!value || value === message.text) return close();
    save.disabled = true;
    if (await editMessage(conv, message, value)) close();
    else save.disabled = false;
  };
  save.addEventListener("click", submit);
  cancel.addEventListener("click", close);
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      submit();
    } else if (event.key === "Escape") {
      event.stopPropagation();
      close();
    }
  });
}
