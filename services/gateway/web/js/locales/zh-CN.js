export default {
  // --- 安装的应用与通知（js/pwa.js、js/push.js）---
  "pwa.offline_title": "你已离线。",
  "pwa.offline_text": "正在显示已保存的聊天。网络恢复后 Parley 会自动重新连接。",
  "pwa.offline_composer": "你已离线：可以查看此聊天，恢复联网后即可发送消息。",
  "pwa.updated": "Parley 有新版本可用。",
  "pwa.reload": "重新加载",
  "push.offer": "在 Parley 关闭时接收新消息和来电通知。",
  "push.enable": "开启通知",
  "push.later": "以后再说",
  "push.banner_label": "通知",
  "push.blocked": "Parley 的通知已被阻止。你可以在浏览器的网站设置中允许通知。",
  "push.failed": "无法在此浏览器中开启通知。",
};
