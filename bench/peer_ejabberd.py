"""--peer ejabberd: the same pairs and offline-sync workloads against Debian's ejabberd, for comparison.

Two modes, an ejabberd node of the run's own each (own config, node name, ports, spool; loopback
only; stopped after):
  routing   roster-less routing, sessions and mod_offline in Mnesia (ejabberd's default store), no
            archive: what an XMPP server does with nothing written per online delivery.
  mam       `default_db: sql` on Debian's PostgreSQL (users, offline spool, archive), mod_mam with
            `default: always`: every message archived (one row per party, so two per message), as
            Parley stores every message. --prefill N rows are first put in the archive, as Parley's
            store is prefilled.
Both: c2s on a free port of 127.0.0.1 without TLS, SASL PLAIN, no shaper (`shaper: none`, traffic
shapers off), max_fsm_queue raised, in-band registration without its per-address timeout,
mod_stream_mgmt (XEP-0198) for acks, offline storage limit 1,000,000 per user, log level warning.

Needs: ejabberd and erlang-p1-pgsql (apt-get installs them when run as root; policy-rc.d may keep
the system service from starting, which is not used anyway), PostgreSQL answering on 127.0.0.1:5432
as `postgres` without a password (trust) to create the database `parley_peer_ejabberd` and its role
and load /usr/share/ejabberd/sql/pg.sql. The node is started with ejabberdctl, which runs it as the
`ejabberd` user, so the bench runs as root (or as `ejabberd`); ERL_DIST_PORT keeps it off epmd (the
machine's epmd is RabbitMQ's).

CPU per process: beam.smp of the node; with mam, PostgreSQL's processes summed (our database's
backends plus the cluster's walwriter, checkpointer, background writer and autovacuum: those serve
whatever else uses the cluster too, normally nothing during a run); and this process (the clients).
"""
import asyncio
import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from bench.xmpp_load import Groups, xmpp_offline_sync, xmpp_pairs
from deploy.local.devstack import free_port, wait_for_port

DOMAIN = "parley.bench"
DB = "parley_peer_ejabberd"
CTL = "/usr/sbin/ejabberdctl"
SCHEMA = Path("/usr/share/ejabberd/sql/pg.sql")
PACKAGES = ("ejabberd", "erlang-p1-pgsql")
PSQL = ["psql", "-h", "127.0.0.1", "-U", "postgres", "-v", "ON_ERROR_STOP=1", "-q", "-X"]
MODES = ("routing", "mam")
POOL = 10  # sql_pool_size (ejabberd's default)


def missing_packages() -> list[str]:
    out = []
    for pkg in PACKAGES:
        r = subprocess.run(["dpkg-query", "-W", "-f=${Status}", pkg], capture_output=True, text=True)
        if "install ok installed" not in r.stdout:
            out.append(pkg)
    return out


def ensure_installed() -> None:
    missing = missing_packages()
    if missing and os.geteuid() == 0:
        print(f"--peer ejabberd: installing {' '.join(missing)} (apt-get) ...", flush=True)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "install", "-y", "-q", *missing], env=env, check=True, stdout=subprocess.DEVNULL)
        if Path("/run/systemd/system").is_dir():  # the package starts a system ejabberd: not ours, off
            subprocess.run(["systemctl", "disable", "--now", "ejabberd"], capture_output=True)
        missing = missing_packages()
    if missing:
        raise SystemExit(f"--peer ejabberd needs Debian's {' '.join(missing)}: as root, "
                         f"apt-get install {' '.join(missing)}")
    if shutil.which("psql") is None:
        raise SystemExit("--peer ejabberd needs PostgreSQL (apt-get install postgresql) answering on 127.0.0.1:5432")


def psql(sql: str, db: str = "postgres", user: str = "postgres") -> str:
    argv = [*PSQL[:4], user, *PSQL[5:], "-d", db, "-At"]
    env = {**os.environ, "PGPASSWORD": DB} if user == DB else None  # the role's password, where trust is off
    r = subprocess.run(argv, input=sql, capture_output=True, text=True, env=env)
    if r.returncode:
        raise SystemExit(f"psql failed on {db} as {user}: {r.stderr.strip()[:500]}")
    return r.stdout.strip()


def prefill_sql(rows: int) -> str:
    """`rows` archived chats between 1,000 users who are not the run's, in one INSERT."""
    return ("INSERT INTO archive (username, timestamp, peer, bare_peer, xml, txt, kind, nick, created_at) "
            "SELECT 'old' || (i % 1000), 1600000000000000 + i, 'old' || ((i + 1) % 1000) || "
            f"'@{DOMAIN}/phone', 'old' || ((i + 1) % 1000) || '@{DOMAIN}', "
            "'<message type=''chat''><body>' || repeat('x', 100) || '</body></message>', repeat('x', 100), "
            f"'chat', '', now() FROM generate_series(1, {int(rows)}) AS i;")


def prepare_database(prefill: int) -> None:
    """A fresh database and role for ejabberd, its schema loaded, the archive prefilled."""
    psql(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE);")
    psql(f"DO $$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{DB}') THEN "
         f"CREATE ROLE {DB} LOGIN PASSWORD '{DB}'; END IF; END$$;")
    psql(f"CREATE DATABASE {DB} OWNER {DB};")
    psql(SCHEMA.read_text(), db=DB, user=DB)
    if prefill:
        psql(prefill_sql(prefill) + " ANALYZE archive;", db=DB, user=DB)


def config_yaml(port: int, mode: str) -> str:
    """ejabberd.yml for one mode (routing: Mnesia only; mam: PostgreSQL and mod_mam)."""
    if mode not in MODES:
        raise ValueError(f"mode is one of {MODES}")
    sql = mode == "mam"
    lines = [
        f'hosts: ["{DOMAIN}"]', "loglevel: warning", "log_rotate_count: 0", "hide_sensitive_log_data: true",
        "registration_timeout: infinity", "max_fsm_queue: 1000000", "auth_password_format: plain",
        f"auth_method: {'sql' if sql else 'mnesia'}", f"default_db: {'sql' if sql else 'mnesia'}",
        "listen:", f"  - port: {port}", '    ip: "127.0.0.1"', "    module: ejabberd_c2s",
        "    shaper: none", "    starttls: false", "    max_stanza_size: 1048576", "    max_fsm_queue: 1000000",
        "acl:", "  local:", '    user_regexp: ""',
        "access_rules:", "  register:", "    allow: all", "  local:", "    allow: local",
        "shaper_rules:", "  max_user_sessions: 10", "  max_user_offline_messages: 1000000", "  c2s_shaper: none",
        "modules:", "  mod_register:", "    access: register", "  mod_admin_extra: {}",
        "  mod_stream_mgmt:", "    max_ack_queue: 100000", "    resend_on_timeout: false",
        "  mod_offline:", "    access_max_user_messages: max_user_offline_messages",
    ]
    if sql:
        lines += ["  mod_mam:", "    default: always", "    db_type: sql", "    assume_mam_usage: true",
                  "sql_type: pgsql", 'sql_server: "127.0.0.1"', "sql_port: 5432", f'sql_database: "{DB}"',
                  f'sql_username: "{DB}"', f'sql_password: "{DB}"', f"sql_pool_size: {POOL}", "new_sql_schema: false"]
    return "\n".join(lines) + "\n"


def ctl_cfg(node: str, dist_port: int) -> str:
    return (f'ERLANG_NODE={node}\nERL_DIST_PORT={dist_port}\nINET_DIST_INTERFACE=127.0.0.1\n'
            'ERL_OPTIONS="-env ERL_CRASH_DUMP_BYTES 0"\n')


@dataclass
class Node:
    mode: str
    port: int
    run_dir: Path
    beam: psutil.Process

    def processes(self) -> Groups:
        """The processes whose CPU counts, read anew: ejabberd's SQL pool connects on first use."""
        groups: Groups = {"ejabberd": [self.beam]}
        if self.mode == "mam":
            groups["postgres"] = postgres_processes()
        groups["bench-clients"] = [psutil.Process()]
        return groups

    def ctl(self, *args: str) -> list[str]:
        return [CTL, "--config-dir", str(self.run_dir), "--spool", str(self.run_dir / "spool"),
                "--logs", str(self.run_dir / "logs"), *args]

    async def offline_count(self, user: str) -> int:
        r = await asyncio.to_thread(subprocess.run, self.ctl("get_offline_count", user, DOMAIN),
                                    capture_output=True, text=True)
        last = r.stdout.strip().splitlines()[-1:] or [""]
        return int(last[0]) if last[0].isdigit() else -1


def postgres_processes() -> list[psutil.Process]:
    """Our database's backends and the cluster's own helpers (not other databases' backends)."""
    out = []
    for p in psutil.process_iter(["name", "cmdline", "username"]):
        cmd = " ".join(p.info["cmdline"] or [])
        if p.info["username"] != "postgres" or "postgres" not in (p.info["name"] or ""):
            continue
        helper = any(h in cmd for h in ("walwriter", "checkpointer", "background writer", "autovacuum"))
        if helper or f" {DB} {DB} " in cmd + " ":
            out.append(p)
    return out


def _beam_of(proc: subprocess.Popen[bytes], run_dir: Path) -> psutil.Process:
    for child in psutil.Process(proc.pid).children(recursive=True):
        if child.name() == "beam.smp":
            return child
    raise SystemExit(f"ejabberd's beam.smp not found under pid {proc.pid} (log: {run_dir}/logs)")


@asynccontextmanager
async def ejabberd_node(mode: str, prefill: int = 0) -> AsyncIterator[Node]:
    if mode == "mam":
        await asyncio.to_thread(prepare_database, prefill)
    run_dir = Path(tempfile.mkdtemp(prefix=f"parley-ejabberd-{mode}-"))
    port, dist_port = free_port(), free_port()
    (run_dir / "spool").mkdir()
    (run_dir / "logs").mkdir()
    (run_dir / "ejabberd.yml").write_text(config_yaml(port, mode))
    (run_dir / "ejabberdctl.cfg").write_text(ctl_cfg(f"parleybench{port}@localhost", dist_port))
    (run_dir / "inetrc").write_text('{lookup,["file","native"]}.\n{host,{127,0,0,1}, ["localhost"]}.\n')
    if os.geteuid() == 0:  # ejabberdctl runs the node as the ejabberd user
        for path in (run_dir, *run_dir.rglob("*")):
            shutil.chown(path, "ejabberd", "ejabberd")
    out = open(run_dir / "logs" / "foreground.out", "wb")  # noqa: SIM115 (the node's whole life)
    proc = subprocess.Popen([CTL, "--config-dir", str(run_dir), "--spool", str(run_dir / "spool"),
                             "--logs", str(run_dir / "logs"), "foreground"],
                            stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    node: Node | None = None
    try:
        await asyncio.to_thread(wait_for_port, port, 90, f"ejabberd ({mode}; log {run_dir}/logs)")
        beam = _beam_of(proc, run_dir)
        node = Node(mode, port, run_dir, beam)
        print(f"ejabberd ({mode}) on 127.0.0.1:{port}, beam.smp pid {beam.pid}, run dir {run_dir}", flush=True)
        yield node
    finally:
        if node is not None:
            await asyncio.to_thread(subprocess.run, node.ctl("stop"), capture_output=True, timeout=60)
        try:
            await asyncio.to_thread(proc.wait, 30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, 9)
            proc.wait()
        out.close()
        shutil.rmtree(run_dir, ignore_errors=True)


async def peer_run(mode: str, args: Any) -> dict[str, Any]:
    """One mode: pairs, then the offline sync of --burst messages, on a node of its own."""
    async with ejabberd_node(mode, args.prefill if mode == "mam" else 0) as node:
        result: dict[str, Any] = {"system": f"ejabberd {mode}", "mode": mode}
        if args.pairs:
            result["pairs"] = await xmpp_pairs(node.port, DOMAIN, node.processes, args.pairs, args.window,
                                               args.seconds, args.warmup, args.ack_every, args.size)
        if args.burst:
            result["burst"] = await xmpp_offline_sync(node.port, DOMAIN, args.burst, node.offline_count, args.size)
        return result


async def ejabberd_peer(args: Any) -> list[dict[str, Any]]:
    ensure_installed()
    return [await peer_run(mode, args) for mode in MODES]


def summary(system: str, pairs: dict[str, Any] | None, burst: dict[str, Any] | None) -> dict[str, Any]:
    """One row of the side-by-side table from a pairs result and a burst (offline sync) result."""
    row: dict[str, Any] = {"system": system}
    if pairs:
        cpu = pairs["cpu"]
        server = [label for label in cpu if label not in ("total", "bench-clients")]
        row.update(delivered_per_second=pairs["delivered_per_second"], p50_ms=pairs["latency_ms"]["p50"],
                   p99_ms=pairs["latency_ms"]["p99"], lost=pairs["lost"], duplicated=pairs["duplicated"],
                   cpu={label: (cpu[label]["cpu_ms_per_message"], cpu[label]["cpu_percent"]) for label in cpu},
                   server_cpu_ms=(round(sum(cpu[label]["cpu_ms_per_message"] or 0.0 for label in server), 3)
                                  if pairs["delivered_in_window"] else None),
                   other_cpu_percent=pairs.get("other_cpu_percent"))
    if burst:
        row.update(sync_messages=burst["messages"], sync_seconds=burst["login_to_all_delivered_seconds"],
                   sync_ok=burst["ok"])
    return row


def _shown(value: Any, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def side_by_side(rows: list[dict[str, Any]]) -> str:
    """The systems as rows; the per-process CPU-ms per delivered message (and CPU %) last."""
    sync = next((r["sync_messages"] for r in rows if r.get("sync_messages")), 0)
    head = (f"{'system':<18}{'msg/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'lost':>6}{'dup':>5}{'server':>9}"
            f"{'sync ' + format(sync, ',') + ' s':>14}{'others':>8}   CPU-ms per delivered msg by process (CPU %)")
    lines = [head, f"{'':<18}{'':>10}{'':>9}{'':>9}{'':>6}{'':>5}{'CPU-ms':>9}{'':>14}{'CPU %':>8}"]
    for r in rows:
        procs = sorted(((label, ms, pct) for label, (ms, pct) in r.get("cpu", {}).items()
                        if label != "total" and (pct or 0) >= 0.5), key=lambda t: -(t[1] or 0))
        detail = ", ".join(f"{label} {_shown(ms, '.3f')} ({pct:.0f}%)" for label, ms, pct in procs)
        sync_s = _shown(r.get("sync_seconds"), ".3f") + ("" if r.get("sync_ok", True) else "!")
        lines.append(f"{r['system']:<18}{_shown(r.get('delivered_per_second'), ',.1f'):>10}"
                     f"{_shown(r.get('p50_ms'), '.1f'):>9}{_shown(r.get('p99_ms'), '.1f'):>9}"
                     f"{_shown(r.get('lost'), 'd'):>6}{_shown(r.get('duplicated'), 'd'):>5}"
                     f"{_shown(r.get('server_cpu_ms'), '.3f'):>9}{sync_s:>14}"
                     f"{_shown(r.get('other_cpu_percent'), '.0f'):>8}   {detail}")
    base = rows[0]
    for r in rows[1:]:
        parts = []
        for key, name in (("delivered_per_second", "msg/s"), ("p99_ms", "p99"), ("server_cpu_ms", "server CPU-ms/msg"),
                          ("sync_seconds", "sync")):
            a, b = r.get(key), base.get(key)
            if a and b:
                parts.append(f"{name} x{a / b:.2f}")
        lines.append(f"{r['system']} / {base['system']}: " + (", ".join(parts) or "-"))
    lines.append("server CPU-ms = the servers' processes (not the bench's clients) per delivered message; "
                 "sync = login (ejabberd: initial presence) -> all received; '!' = incomplete;\n"
                 "others = CPU % of the machine's 100 % per core used by processes not in the row (other work)")
    return "\n".join(lines)
