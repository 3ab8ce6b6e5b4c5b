"""The Python client's Olm (vodozemac) and the web client's (libolm 3.2.15 in WebAssembly) talk
to each other: a session made by either side, signatures made by one checked by the other.
Needs Node.js and libolm's olm.js / olm.wasm: the web client's vendor files
(services/gateway/web/vendor/dist, `make web-vendor`) or PARLEY_OLM_JS naming olm.js; skipped,
saying so, without them."""
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from parley_client.e2e import Device, E2EStore
from parley_client.e2e.primitives import device_keys_text, one_time_key_text

ROOT = Path(__file__).resolve().parents[2]
OLM_JS = Path(os.environ.get("PARLEY_OLM_JS", ROOT / "services/gateway/web/vendor/dist/olm.js"))
NODE = shutil.which("node")

pytestmark = pytest.mark.skipif(NODE is None or not OLM_JS.exists(),
                                reason=f"needs node and libolm's olm.js ({OLM_JS}; make web-vendor or PARLEY_OLM_JS)")

# A libolm device in Node: `start` verifies Bob's signed device keys and one-time key, opens an
# outbound session and encrypts; `reply` decrypts Bob's answer with the session it pickled.
SCRIPT = r"""
const Olm = require(process.env.OLM_JS);
const fs = require('fs');
const path = require('path');
(async () => {
  await Olm.init({locateFile: () => path.join(path.dirname(process.env.OLM_JS), 'olm.wasm')});
  const io = JSON.parse(fs.readFileSync(process.argv[2]));
  const u = new Olm.Utility();
  if (process.argv[3] === 'start') {
    u.ed25519_verify(io.signing_key, io.device_text, io.device_signature);
    u.ed25519_verify(io.signing_key, io.otk_text, io.otk_signature);
    const a = new Olm.Account(); a.create();
    const keys = JSON.parse(a.identity_keys());
    const s = new Olm.Session(); s.create_outbound(a, io.identity_key, io.otk);
    const m = s.encrypt(JSON.stringify({type: 'text', text: 'hello from libolm'}));
    const text = ['parley-e2e-v1', 'device', 'alice', 'web', keys.curve25519, keys.ed25519].join('\n');
    console.log(JSON.stringify({session: s.pickle('k'), identity_key: keys.curve25519, signing_key: keys.ed25519,
                                signature: a.sign(text), type: m.type, body: m.body}));
  } else {
    const s = new Olm.Session(); s.unpickle('k', io.session);
    const out = [];
    for (const m of io.messages) out.push(s.decrypt(m.type, m.body));
    console.log(JSON.stringify(out));
  }
})().catch((e) => { console.error(String(e)); process.exit(1); });
"""


def node(tmp_path: Path, step: str, data: dict[str, object]) -> object:
    (tmp_path / "olm_step.js").write_text(SCRIPT)
    (tmp_path / "io.json").write_text(json.dumps(data))
    assert NODE is not None
    done = subprocess.run([NODE, str(tmp_path / "olm_step.js"), str(tmp_path / "io.json"), step], capture_output=True,
                          text=True, timeout=60, env={**os.environ, "OLM_JS": str(OLM_JS.resolve())})
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_vodozemac_and_libolm_make_a_session_and_check_each_others_signatures(tmp_path: Path) -> None:
    bob = Device(E2EStore(tmp_path / "bob.e2e", bytes(32)), "bob", "phone")
    data = bob.keys_to_publish(1, True, True)
    bob.published(data)
    otk = data["one_time_keys"][0]
    web = node(tmp_path, "start", {
        "identity_key": bob.identity_key, "signing_key": bob.signing_key, "otk": otk["key"],
        "device_text": device_keys_text("bob", "phone", bob.identity_key, bob.signing_key).decode(),
        "device_signature": data["device_keys"]["signature"],
        "otk_text": one_time_key_text("bob", "phone", otk["key_id"], otk["key"]).decode(),
        "otk_signature": otk["signature"]})
    assert isinstance(web, dict)
    devices, _ = bob.check_devices([{"user_id": "alice", "device_id": "web", "identity_key": web["identity_key"],
                                     "signing_key": web["signing_key"], "signature": web["signature"]}], ["alice"])
    assert [d.device_id for d in devices] == ["web"]  # libolm's Ed25519 signature checked here
    assert bob.decrypt_from(web["identity_key"], web["type"], web["body"]) == b'{"type":"text","text":"hello from libolm"}'
    replies = [bob.encrypt_to(web["identity_key"], f'{{"type":"text","text":"reply {i}"}}'.encode()) for i in range(2)]
    assert [kind for kind, _ in replies] == [1, 1]  # the session came from libolm's pre-key message: normal ones
    got = node(tmp_path, "reply", {"session": web["session"], "messages": [{"type": k, "body": b} for k, b in replies]})
    assert got == ['{"type":"text","text":"reply 0"}', '{"type":"text","text":"reply 1"}']
