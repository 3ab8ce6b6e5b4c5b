// Reactions under a message: one chip per emoji with its count, mine highlighted (aria-pressed);
// a click on a chip adds my reaction or takes it back. Redrawn only when the reactions change.

import { state, nameOf } from "../store.js";
import { h } from "../dom.js";
import { toggleReaction } from "../interactions.js";
import { t, list, locale } from "../i18n.js";

export const COMMON_EMOJI = ["👍", "❤️", "😂", "😮", "😢", "🙏", "🎉", "🔥"];

export function updateReactions(row, conv, message) {
  const me = state.me?.user_id;
  const reactions = message.e2e || message.encrypted || conv.encryptedAt ? [] : message.reactions || []; // none when end-to-end encrypted
  const signature = reactions.map((r) => `${r.emoji}:${r.count}:${r.user_ids.includes(me) ? 1 : 0}`).join(",") + `|${state.namesRev}|${locale()}`;
  if (row.dataset.signature === signature) return;
  row.dataset.signature = signature;
  row.hidden = reactions.length === 0;
  row.replaceChildren(...reactions.map((reaction) => chip(conv, message, reaction, me)));
}

function chip(conv, message, reaction, me) {
  const mine = reaction.user_ids.includes(me);
  const who = list(reaction.user_ids.map(nameOf));
  const button = h("button", {
    type: "button", class: "reaction", "aria-pressed": String(mine), title: who,
    "aria-label": mine ? t("reactions.label_mine", { emoji: reaction.emoji, count: reaction.count, names: who })
      : t("reactions.label", { emoji: reaction.emoji, count: reaction.count, names: who }),
    dataset: { testid: "reaction", emoji: reaction.emoji, mine: String(mine) },
  }, h("span", { class: "emoji" }, reaction.emoji), h("span", { class: "count", dataset: { testid: "reaction-count" } }, String(reaction.count)));
  button.addEventListener("click", () => toggleReaction(conv, message, reaction.emoji));
  return button;
}
