// Every error code of PROTOCOL.md (and the HTTP statuses of /files) in words a user understands.
// The wording depends on what was being done: `conflict` on registering is a taken username,
// on a friend request it means "already friends".

const GENERAL = {
  bad_request: "Parley could not accept that.",
  unauthorized: "You are not logged in any more. Please log in again.",
  forbidden: "You are not allowed to do that.",
  not_found: "That does not exist any more, or you cannot see it.",
  conflict: "That has already been done.",
  rate_limited: "You are sending too fast. Wait a moment, then try again.",
  too_large: "That is too large to send.",
  unavailable: "Parley is temporarily unavailable. Please try again in a moment.",
  internal: "Something went wrong on the server. Please try again.",
  disconnected: "You are offline. Parley is reconnecting; try again in a moment.",
};

// "operation:code" -> text, where the general one would be vague.
const SPECIFIC = {
  "auth.register:conflict": "That username is already taken. Please pick another one.",
  "auth.login:unauthorized": "Wrong username or password.",
  "auth.resume:unauthorized": "Your session has ended. Please log in again.",
  "friends.request:conflict": "You are already friends.",
  "friends.request:not_found": "That user does not exist any more.",
  "friends.request:bad_request": "You cannot add yourself as a friend.",
  "friends.accept:not_found": "That friend request is no longer pending.",
  "friends.accept:conflict": "You are already friends.",
  "friends.remove:not_found": "That request was already withdrawn.",
  "message.send:forbidden": "You can only message your friends, and groups you are a member of.",
  "message.send:not_found": "That file is not available any more.",
  "message.send:too_large": "That message is too long.",
  "message.recall:forbidden": "Only the sender can recall a message, and only within 10 minutes.",
  "message.recall:not_found": "That message is already gone.",
  "history.fetch:forbidden": "You are no longer a member of this conversation.",
  "groups.create:not_found": "One of the chosen members does not exist any more.",
  "groups.add_members:forbidden": "Only the group's owner and admins can add members.",
  "groups.add_members:not_found": "That user does not exist any more.",
  "groups.set_role:forbidden": "Only the group's owner can change roles.",
  "groups.members:forbidden": "You are no longer a member of this group.",
  "groups.leave:forbidden": "You are not a member of this group any more.",
  "call.invite:forbidden": "You can call only your friends, one to one.",
  "call.invite:conflict": "You are already in a call (here or on another device).",
  "call.invite:rate_limited": "You are calling too often. Wait a minute, then try again.",
  "call.invite:not_found": "That conversation does not exist any more.",
  "call.accept:forbidden": "You cannot answer this call.",
  "calls.ice_servers:unavailable": "Calls are unavailable at the moment. Please try again shortly.",
  "upload:unauthorized": "Your session has ended, so the file was not sent. Please log in again.",
  "upload:disconnected": "The upload was interrupted. Check your connection and try again.",
  "download:not_found": "This file is not available (it was recalled, or you cannot see it).",
  "download:unauthorized": "Your session has ended. Please log in again to open files.",
  "friends.request:forbidden": "You cannot send this user a friend request.",
  "profile.get:not_found": "That user does not exist any more.",
  "profile.update:not_found": "That picture is not available any more. Please upload it again.",
  "blocks.add:not_found": "That user does not exist any more.",
  "blocks.add:bad_request": "You cannot block yourself.",
  "blocks.remove:not_found": "That user is not blocked any more.",
};

const HTTP_CODES = { 400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
  409: "conflict", 413: "too_large", 429: "rate_limited", 500: "internal", 502: "unavailable",
  503: "unavailable", 504: "unavailable" };

const FIELDS = {
  username: "Username", password: "Password", display_name: "Display name", text: "Message",
  name: "Group name", query: "Search", member_ids: "Members", user_ids: "Members",
  ttl_seconds: "Disappearing time", client_msg_id: "Message id", "to.user_id": "Recipient",
  avatar_file_id: "Picture",
  avatar_image_id: "Picture",
};

/** The code an HTTP response stands for: the body's `error.code`, else the status's. */
export function httpCode(status, body) {
  return body?.error?.code || HTTP_CODES[status] || (status >= 500 ? "unavailable" : "bad_request");
}

/** A sentence for the user about `error` (a ProtocolError or anything thrown) during `operation`. */
export function describe(error, operation = "") {
  const code = error?.code || "internal";
  if (code === "bad_request") return describeBadRequest(error.message, operation);
  if (code === "too_large" && operation === "upload") return describeTooLarge(error.message);
  if (code === "rate_limited" && (operation === "auth.register" || operation === "auth.login")) {
    return serverSentence(error.message, code) || GENERAL.rate_limited; // it says how long to wait
  }
  if (operation === "friends.request" && code === "conflict" && /\bblocked\b/.test(error.message || "")) {
    return "You blocked this user. Unblock them first (in your profile).";
  }
  return SPECIFIC[`${operation}:${code}`] || GENERAL[code] || GENERAL.internal;
}

/** The server's own message as a sentence ("too many …; retry in 180 s" -> "Too many …; retry in 180 s."). */
function serverSentence(message, code) {
  const text = (message || "").trim();
  if (!text || text === code) return "";
  return text[0].toUpperCase() + text.slice(1) + (/[.!?]$/.test(text) ? "" : ".");
}

function describeBadRequest(message, operation) {
  const specific = SPECIFIC[`${operation}:bad_request`];
  if (specific) return specific;
  // The server names the field: "data.username: String should have at least 3 characters".
  const match = /^data\.([\w.\[\]]+): (.*)$/.exec(message || "");
  if (!match) return message ? `${GENERAL.bad_request} (${message})` : GENERAL.bad_request;
  const field = match[1].replace(/\.\d+$|\[\d+\]$/, "");
  const label = FIELDS[field] || field.replace(/_/g, " ");
  return `${label}: ${plainRule(match[2], field)}`;
}

function plainRule(rule, field) {
  let m;
  if ((m = /at least (\d+) (character|item)/.exec(rule))) return `must be at least ${m[1]} ${m[2]}s long.`;
  if ((m = /at most (\d+) (character|item)/.exec(rule))) return `must be at most ${m[1]} ${m[2]}s long.`;
  if (/should match pattern/.exec(rule) && field === "username") {
    return "use only lower-case letters, digits and _ . - (3 to 32 characters).";
  }
  if (/Field required/i.test(rule)) return "is required.";
  return rule.endsWith(".") ? rule : `${rule}.`;
}

function describeTooLarge(message) {
  const m = /limit of (\d+) bytes/.exec(message || "");
  if (!m) return "That file is too large to send.";
  const mib = Number(m[1]) / (1024 * 1024);
  return `That file is too large to send: the limit is ${mib >= 1 ? `${Math.round(mib)} MiB` : `${m[1]} bytes`}.`;
}

/** Why the socket closed, for close codes the user should hear about. */
export function describeClose(code) {
  switch (code) {
    case 4401: return "Your session has ended (you logged out elsewhere, or it expired). Please log in again.";
    case 4009: return "Parley is open in another tab or window of this browser.";
    case 4008: return "The connection fell behind; catching up.";
    case 1012: return "The server is restarting; reconnecting.";
    default: return "";
  }
}
