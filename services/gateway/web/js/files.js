// Files over HTTP (PROTOCOL.md "Files"), with the session's token as a Bearer header.
// Uploads go through XMLHttpRequest for its upload progress events. Downloads need the header
// too, so a file is fetched into a Blob and shown through an object URL (img, audio, video) or
// saved through a temporary <a download>. Images in the timeline are drawn from their thumbnail
// (`GET /files/{file_id}/thumbnail`, docs/protocol.md "Voice messages and thumbnails"); the full
// image is fetched only when opened.

import { ProtocolError } from "./protocol.js";
import { httpCode } from "./errors.js";
import { decryptFile } from "./e2e.js";

/** Upload `file`; onProgress(fraction). Resolves with {file_id, name, size, content_type, sha256}. */
export function upload(file, token, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", "/files");
    xhr.setRequestHeader("Authorization", `Bearer ${token}`);
    xhr.setRequestHeader("X-File-Name", encodeURIComponent(file.name || "file"));
    if (file.type) xhr.setRequestHeader("Content-Type", file.type);
    xhr.responseType = "json";
    xhr.upload.onprogress = (event) => {
      if (event.lengthComputable && event.total > 0) onProgress(event.loaded / event.total);
    };
    xhr.onload = () => {
      if (xhr.status === 201 && xhr.response?.file_id) {
        onProgress(1);
        resolve(xhr.response);
      } else {
        const body = xhr.response;
        reject(new ProtocolError(httpCode(xhr.status, body), body?.error?.message, xhr.status));
      }
    };
    xhr.onerror = () => reject(new ProtocolError("disconnected", "the upload was interrupted"));
    xhr.onabort = () => reject(new ProtocolError("disconnected", "the upload was cancelled"));
    xhr.send(file);
  });
}

// path -> Promise of an object URL; one download per file (and thumbnail) for the page's life.
const cache = new Map();

/**
 * An object URL holding the file's bytes (fetched once). Rejects with a ProtocolError. `file`
 * with a `secret` (end-to-end encrypted, docs/security.md): the bytes fetched are AES-256-GCM
 * ciphertext, checked against its SHA-256 and decrypted here into a blob of the file's type.
 */
export function objectUrl(fileId, token, file = null) {
  const path = `/files/${encodeURIComponent(fileId)}`;
  if (!file?.secret) return cached(path, token);
  const key = `${path}#e2e`;
  if (!cache.has(key)) {
    const pending = fetchBlob(path, token)
      .then(async (blob) => decryptFile(await blob.arrayBuffer(), file.secret, file.content_type))
      .then((blob) => URL.createObjectURL(blob));
    pending.catch(() => cache.delete(key));
    cache.set(key, pending);
  }
  return cache.get(key);
}

/**
 * An object URL holding the image's thumbnail (a JPEG fitting 320×320, fetched once). Rejects
 * with a ProtocolError whose `status` is 415 (not an image the server can read) or 413 (too
 * big to thumbnail): the caller shows a file card then.
 */
export function thumbnailUrl(fileId, token) {
  return cached(`/files/${encodeURIComponent(fileId)}/thumbnail`, token);
}

function cached(path, token) {
  if (!cache.has(path)) {
    const pending = fetchBlob(path, token).then((blob) => URL.createObjectURL(blob));
    pending.catch(() => cache.delete(path)); // let a later attempt try again
    cache.set(path, pending);
  }
  return cache.get(path);
}

async function fetchBlob(path, token) {
  let response;
  try {
    response = await fetch(path, {
      headers: { Authorization: `Bearer ${token}` },
      cache: "no-store",
    });
  } catch {
    throw new ProtocolError("disconnected", "the download was interrupted");
  }
  if (!response.ok) {
    let body = null;
    try {
      body = await response.json();
    } catch {
      // not JSON
    }
    throw new ProtocolError(httpCode(response.status, body), body?.error?.message, response.status);
  }
  return response.blob();
}

/** Save the file under its name (the browser's download). */
export async function save(fileId, name, token, file = null) {
  const url = await objectUrl(fileId, token, file);
  const link = document.createElement("a");
  link.href = url;
  link.download = name || "file";
  link.hidden = true;
  document.body.append(link);
  link.click();
  link.remove();
}

/** Forget every downloaded file (logging out). */
export function forgetAll() {
  for (const pending of cache.values()) pending.then((url) => URL.revokeObjectURL(url), () => {});
  cache.clear();
}
