// Where end-to-end encryption keeps its secrets in this browser (docs/security.md): one IndexedDB
// database per user. A Web Crypto AES-256-GCM key made NON-EXTRACTABLE (`extractable: false`: its
// bytes can never be read by script, exported or sent) is kept there as a CryptoKey object; it
// wraps the random pickle key with which libolm pickles (encrypts) the account and the sessions,
// and it seals the plaintexts decrypted here (an Olm message decrypts once only, so what was read
// is kept to be shown again after a reload). Nothing here leaves the browser.

// "megolm" (version 2): the Megolm group sessions, pickled with the pickle key like Olm's.
const STORES = ["meta", "olm", "pins", "plain", "megolm"];
const VERSION = 2;

function promised(request) {
  return new Promise((resolve, reject) => {
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

function openDb(name) {
  const request = indexedDB.open(name, VERSION);
  request.onupgradeneeded = () => {
    for (const store of STORES) if (!request.result.objectStoreNames.contains(store)) request.result.createObjectStore(store);
  };
  return promised(request);
}

function dbName(userId) {
  return `parley-e2e:${userId}`;
}

/** Delete the user's store in this browser (logging out: nothing of the account stays). */
export function deleteStore(userId) {
  return new Promise((resolve) => {
    const request = indexedDB.deleteDatabase(dbName(userId));
    request.onsuccess = request.onerror = request.onblocked = () => resolve();
  });
}

export function b64(bytes) {
  let text = "";
  for (const byte of new Uint8Array(bytes)) text += String.fromCharCode(byte);
  return btoa(text).replace(/=+$/, "");
}

export function unb64(text) {
  const padded = text + "=".repeat((4 - (text.length % 4)) % 4);
  return Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
}

export function hex(bytes) {
  return [...new Uint8Array(bytes)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

export class KeyStore {
  /** The store of user `userId` in this browser, with its wrapping key and pickle key ready. */
  static async open(userId) {
    const db = await openDb(dbName(userId));
    db.onversionchange = () => db.close(); // deleted elsewhere (another tab, site data cleared): let it go
    const store = new KeyStore(db);
    await store.unlock();
    return store;
  }

  constructor(db) {
    this.db = db;
    this.wrapKey = null; // CryptoKey, non-extractable
    this.pickleKey = null; // string, in memory only; stored wrapped
  }

  close() {
    this.db.close();
  }

  async get(store, id) {
    return promised(this.db.transaction(store).objectStore(store).get(id));
  }

  async put(store, id, value) {
    const tx = this.db.transaction(store, "readwrite");
    tx.objectStore(store).put(value, id);
    return new Promise((resolve, reject) => {
      tx.oncomplete = () => resolve();
      tx.onerror = () => reject(tx.error);
    });
  }

  async remove(store, id) {
    const tx = this.db.transaction(store, "readwrite");
    tx.objectStore(store).delete(id);
    return new Promise((resolve) => {
      tx.oncomplete = () => resolve();
      tx.onerror = () => resolve();
    });
  }

  /** [[id, value], ...] of a whole store. */
  async entries(store) {
    const os = this.db.transaction(store).objectStore(store);
    const [keys, values] = await Promise.all([promised(os.getAllKeys()), promised(os.getAll())]);
    return keys.map((key, i) => [key, values[i]]);
  }

  async unlock() {
    let wrapKey = await this.get("meta", "wrap");
    if (!wrapKey) {
      wrapKey = await crypto.subtle.generateKey({ name: "AES-GCM", length: 256 }, false, ["encrypt", "decrypt"]);
      await this.put("meta", "wrap", wrapKey);
    }
    this.wrapKey = wrapKey;
    const wrapped = await this.get("meta", "pickle");
    if (wrapped) {
      this.pickleKey = new TextDecoder().decode(await this.open_(wrapped));
    } else {
      this.pickleKey = b64(crypto.getRandomValues(new Uint8Array(32)));
      await this.put("meta", "pickle", await this.seal_(new TextEncoder().encode(this.pickleKey)));
    }
  }

  async seal_(bytes) {
    const iv = crypto.getRandomValues(new Uint8Array(12));
    const data = await crypto.subtle.encrypt({ name: "AES-GCM", iv }, this.wrapKey, bytes);
    return { iv, data };
  }

  async open_({ iv, data }) {
    return crypto.subtle.decrypt({ name: "AES-GCM", iv }, this.wrapKey, data);
  }

  /** Keep `value` (JSON) sealed with the wrapping key. */
  async putSealed(store, id, value) {
    await this.put(store, id, await this.seal_(new TextEncoder().encode(JSON.stringify(value))));
  }

  async getSealed(store, id) {
    const sealed = await this.get(store, id);
    if (!sealed) return undefined;
    try {
      return JSON.parse(new TextDecoder().decode(await this.open_(sealed)));
    } catch {
      return undefined;
    }
  }
}
