// Every error code of PROTOCOL.md (and the HTTP statuses of /files) in words a user understands,
// in the language shown (i18n.js). The headline comes from the code, worded for what was being
// done: `conflict` on registering is a taken username, on a friend request "already friends".
// The server's message (English, for developers) is read only for what it adds: how long to
// wait ("retry in 180 s"), which field is wrong and why, a size limit, why an invite link no
// longer works; those are said in the user's language too.

import { t } from "./i18n.js";

const GENERAL = {
  bad_request: () => t("errors.bad_request"),
  unauthorized: () => t("errors.unauthorized"),
  forbidden: () => t("errors.forbidden"),
  not_found: () => t("errors.not_found"),
  conflict: () => t("errors.conflict"),
  rate_limited: () => t("errors.rate_limited"),
  too_large: () => t("errors.too_large"),
  unavailable: () => t("errors.unavailable"),
  internal: () => t("errors.internal"),
  disconnected: () => t("errors.disconnected"),
  // end-to-end encryption (e2e.js), refused in this page before anything is sent
  no_keys: () => t("e2e.error_no_keys"),
  e2e_unavailable: () => t("e2e.error_unavailable"),
  undecryptable: () => t("e2e.undecryptable"),
};

// "operation:code" -> text, where the general one would be vague.
const SPECIFIC = {
  "auth.register:conflict": () => t("errors.auth.register.conflict"),
  "auth.register:rate_limited": () => t("errors.auth.register.rate_limited"),
  "auth.login:unauthorized": () => t("errors.auth.login.unauthorized"),
  "auth.login:rate_limited": () => t("errors.auth.login.rate_limited"),
  "auth.resume:unauthorized": () => t("errors.auth.resume.unauthorized"),
  "friends.request:conflict": () => t("errors.friends.request.conflict"),
  "friends.request:not_found": () => t("errors.user_gone"),
  "friends.request:bad_request": () => t("errors.friends.request.bad_request"),
  "friends.request:forbidden": () => t("errors.friends.request.forbidden"),
  "friends.accept:not_found": () => t("errors.friends.accept.not_found"),
  "friends.accept:conflict": () => t("errors.friends.request.conflict"),
  "friends.remove:not_found": () => t("errors.friends.remove.not_found"),
  "message.send:forbidden": () => t("errors.message.send.forbidden"),
  "message.send:not_found": () => t("errors.message.send.not_found"),
  "message.send:too_large": () => t("errors.message.send.too_large"),
  "message.recall:forbidden": () => t("errors.message.recall.forbidden"),
  "message.recall:not_found": () => t("errors.message.recall.not_found"),
  "message.edit:forbidden": () => t("errors.message.edit.forbidden"),
  "history.fetch:forbidden": () => t("errors.history.fetch.forbidden"),
  "groups.create:not_found": () => t("errors.groups.create.not_found"),
  "groups.add_members:forbidden": () => t("errors.groups.add_members.forbidden"),
  "groups.add_members:not_found": () => t("errors.user_gone"),
  "groups.set_role:forbidden": () => t("errors.groups.set_role.forbidden"),
  "groups.members:forbidden": () => t("errors.groups.members.forbidden"),
  "groups.leave:forbidden": () => t("errors.groups.not_member"),
  "groups.update:forbidden": () => t("errors.groups.update.forbidden"),
  "groups.remove_member:forbidden": () => t("errors.groups.remove_member.forbidden"),
  "groups.remove_member:not_found": () => t("errors.groups.no_such_member"),
  "groups.mute:forbidden": () => t("errors.groups.mute.forbidden"),
  "groups.mute:not_found": () => t("errors.groups.no_such_member"),
  "groups.transfer_ownership:forbidden": () => t("errors.groups.transfer_ownership.forbidden"),
  "groups.transfer_ownership:not_found": () => t("errors.groups.no_such_member"),
  "groups.dissolve:forbidden": () => t("errors.groups.dissolve.forbidden"),
  "groups.invites.list:forbidden": () => t("errors.groups.invites.forbidden"),
  "groups.invites.create:forbidden": () => t("errors.groups.invites.forbidden"),
  "groups.invites.revoke:forbidden": () => t("errors.groups.invites.forbidden"),
  "groups.invites.revoke:not_found": () => t("errors.groups.invites.revoke.not_found"),
  "groups.invites.preview:not_found": () => t("errors.invite.invalid"),
  "groups.join:not_found": () => t("errors.invite.invalid"),
  "groups.join_requests:forbidden": () => t("errors.groups.join_requests.forbidden"),
  "groups.join_requests.accept:forbidden": () => t("errors.groups.join_requests.forbidden"),
  "groups.join_requests.decline:forbidden": () => t("errors.groups.join_requests.forbidden"),
  "groups.join_requests.accept:not_found": () => t("errors.groups.join_requests.not_found"),
  "groups.join_requests.decline:not_found": () => t("errors.groups.join_requests.not_found"),
  "call.invite:forbidden": () => t("errors.call.invite.forbidden"),
  "call.invite:conflict": () => t("errors.call.invite.conflict"),
  "call.invite:rate_limited": () => t("errors.call.invite.rate_limited"),
  "call.invite:not_found": () => t("errors.call.invite.not_found"),
  "call.accept:forbidden": () => t("errors.call.accept.forbidden"),
  "calls.ice_servers:unavailable": () => t("errors.calls.ice_servers.unavailable"),
  "upload:unauthorized": () => t("errors.upload.unauthorized"),
  "upload:disconnected": () => t("errors.upload.disconnected"),
  "download:not_found": () => t("errors.download.not_found"),
  "download:unauthorized": () => t("errors.download.unauthorized"),
  "profile.get:not_found": () => t("errors.user_gone"),
  "profile.update:not_found": () => t("errors.profile.update.not_found"),
  "blocks.add:not_found": () => t("errors.user_gone"),
  "blocks.add:bad_request": () => t("errors.blocks.add.bad_request"),
  "blocks.remove:not_found": () => t("errors.blocks.remove.not_found"),
  "stickers.add:conflict": () => t("errors.stickers.add.conflict"),
  "stickers.add:not_found": () => t("errors.stickers.add.not_found"),
};

// What the server's message says beyond its code, when it says it in these words.
const SERVER_WORDS = [
  [/this invite link was revoked/, () => t("errors.invite.revoked")],
  [/this invite link has expired/, () => t("errors.invite.expired")],
  [/this invite link has been used up/, () => t("errors.invite.used_up")],
  [/this group is full \((\d+) members\)/, (m) => t("errors.group.full", { count: Number(m[1]) })],
  [/at most (\d+) usable invite links/, (m) => t("errors.group.too_many_links", { count: Number(m[1]) })],
  [/(\d+) pending join requests/, () => t("errors.group.too_many_requests")],
  [/you are not a member of this group/, () => t("errors.groups.not_member")],
  [/no such member in this group/, () => t("errors.groups.no_such_member")],
  [/no pending join request/, () => t("errors.groups.join_requests.not_found")],
  [/unknown operation/i, () => t("errors.unsupported")],
];

const HTTP_CODES = { 400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
  409: "conflict", 413: "too_large", 429: "rate_limited", 500: "internal", 502: "unavailable",
  503: "unavailable", 504: "unavailable" };

const FIELDS = {
  username: () => t("errors.field.username"),
  password: () => t("errors.field.password"),
  display_name: () => t("errors.field.display_name"),
  text: () => t("errors.field.text"),
  name: () => t("errors.field.name"),
  description: () => t("errors.field.description"),
  query: () => t("errors.field.query"),
  member_ids: () => t("errors.field.members"),
  user_ids: () => t("errors.field.members"),
  ttl_seconds: () => t("errors.field.ttl_seconds"),
  client_msg_id: () => t("errors.field.client_msg_id"),
  "to.user_id": () => t("errors.field.recipient"),
  user_id: () => t("errors.field.user"),
  avatar_file_id: () => t("errors.field.picture"),
  avatar_image_id: () => t("errors.field.picture"),
  max_uses: () => t("errors.field.max_uses"),
  until: () => t("errors.field.until"),
};

/** The code an HTTP response stands for: the body's `error.code`, else the status's. */
export function httpCode(status, body) {
  return body?.error?.code || HTTP_CODES[status] || (status >= 500 ? "unavailable" : "bad_request");
}

/** Two sentences, joined as the language joins them. */
function sentences(first, second) {
  return t("errors.sentences", { first, second });
}

/** A sentence for the user about `error` (a ProtocolError or anything thrown) during `operation`. */
export function describe(error, operation = "") {
  const code = error?.code || "internal";
  const message = error?.message || "";
  if (code === "bad_request" && !SPECIFIC[`${operation}:bad_request`]) return describeBadRequest(message);
  if (code === "too_large" && operation === "upload") return describeTooLarge(message);
  if (code === "rate_limited") return describeRateLimit(message, operation);
  if (operation === "friends.request" && code === "conflict" && /\bblocked\b/.test(message)) {
    return t("errors.friends.request.blocked");
  }
  return (SPECIFIC[`${operation}:${code}`] || GENERAL[code] || GENERAL.internal)();
}

/** The server's message in the user's words when it is one of the known ones, else "". */
export function serverWords(error) {
  const message = error?.message || "";
  for (const [pattern, words] of SERVER_WORDS) {
    const match = pattern.exec(message);
    if (match) return words(match);
  }
  return "";
}

/**
 * `describe`, with what the server's message adds: its known words, else (for codes whose
 * message names who may do what) the message itself as a detail after the localized headline.
 */
export function describeWithDetail(error, operation = "") {
  const known = serverWords(error);
  if (known) return known;
  const headline = describe(error, operation);
  const message = (error?.message || "").trim();
  const telling = ["forbidden", "not_found", "conflict"].includes(error?.code) && message && message !== error.code;
  if (!telling || SPECIFIC[`${operation}:${error.code}`]) return headline;
  return t("errors.with_detail", { headline, detail: message });
}

function describeRateLimit(message, operation) {
  const headline = SPECIFIC[`${operation}:rate_limited`];
  const wait = /retry in (\d+) s/.exec(message);
  if (wait) {
    const seconds = Number(wait[1]);
    return headline ? sentences(headline(), t("errors.retry_in", { count: seconds })) : t("errors.rate_limited_wait", { count: seconds });
  }
  return headline ? headline() : GENERAL.rate_limited();
}

function describeBadRequest(message) {
  // The server names the field: "data.username: String should have at least 3 characters".
  const match = /^data\.([\w.[\]]+): (.*)$/.exec(message);
  if (!match) {
    const known = serverWords({ message });
    if (known) return known;
    return message ? t("errors.with_detail", { headline: GENERAL.bad_request(), detail: message }) : GENERAL.bad_request();
  }
  const field = match[1].replace(/\.\d+$|\[\d+\]$/, "");
  const label = FIELDS[field]?.() || field.replace(/_/g, " ");
  return t("errors.field_rule", { field: label, rule: plainRule(match[2], field) });
}

function plainRule(rule, field) {
  let m;
  if ((m = /at least (\d+) character/.exec(rule))) return t("errors.rule.min_chars", { count: Number(m[1]) });
  if ((m = /at least (\d+) item/.exec(rule))) return t("errors.rule.min_items", { count: Number(m[1]) });
  if ((m = /at most (\d+) character/.exec(rule))) return t("errors.rule.max_chars", { count: Number(m[1]) });
  if ((m = /at most (\d+) (item|member)/.exec(rule))) return t("errors.rule.max_items", { count: Number(m[1]) });
  if (/should match pattern/.exec(rule) && field === "username") return t("errors.rule.username");
  if (/Field required/i.test(rule)) return t("errors.rule.required");
  if (/you cannot \w+ yourself/.test(rule)) return t("errors.rule.not_yourself");
  if (/you already own this group/.test(rule)) return t("errors.rule.already_owner");
  if (/a time in the future/.test(rule)) return t("errors.rule.future_time");
  return t("errors.rule.other", { rule: rule.replace(/\.$/, "") });
}

function describeTooLarge(message) {
  const m = /limit of (\d+) bytes/.exec(message);
  if (!m) return t("errors.upload.too_large");
  const mib = Number(m[1]) / (1024 * 1024);
  const size = mib >= 1 ? t("errors.size_mib", { count: Math.round(mib) }) : t("errors.size_bytes", { count: Number(m[1]) });
  return t("errors.upload.too_large_limit", { size });
}

/** Why the socket closed, for close codes the user should hear about. */
export function describeClose(code) {
  switch (code) {
    case 4401: return t("errors.close.session_ended");
    case 4009: return t("errors.close.other_tab");
    case 4008: return t("errors.close.fell_behind");
    case 1012: return t("errors.close.restarting");
    default: return "";
  }
}
