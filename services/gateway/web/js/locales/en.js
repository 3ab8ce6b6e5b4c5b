export default {
  // --- the installed app and notifications (js/pwa.js, js/push.js) ---
  "pwa.offline_title": "You're offline.",
  "pwa.offline_text": "Showing your saved chats. Parley reconnects when the network is back.",
  "pwa.offline_composer": "You're offline: you can read this chat, and send again once you're back online.",
  "pwa.updated": "A new version of Parley is ready.",
  "pwa.reload": "Reload",
  "push.offer": "Get notified of new messages and calls when Parley is closed.",
  "push.enable": "Turn on notifications",
  "push.later": "Not now",
  "push.banner_label": "Notifications",
  "push.blocked": "Notifications are blocked for Parley. You can allow them in your browser's site settings.",
  "push.failed": "Notifications could not be turned on in this browser.",
};
