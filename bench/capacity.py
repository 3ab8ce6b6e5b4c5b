"""Issue 27 part 6: a capacity model. How many replicas of each part N connected people need.

The inputs (bench/capacity_inputs.json) are figures measured on this machine by
bench/capacity_check.py (CPU-ms per delivered message per process, CPU per idle bound socket per
second, memory per socket, bytes per stored message) and stated assumptions (user behaviour,
what a replica or node may use, what was not measured). The model turns people into load:

    daily active     = people / online_fraction
    sends/s (peak)   = daily active x messages_per_person_per_day / 86,400 x peak_factor
    recipients/send  = (1 - group_share) x 1 + group_share x (group_size - 1)
    deliveries/send  = recipients x recipient_online x devices + (devices - 1)   (own other devices)
    notifications/s  = sends x recipients x (1 - recipient_online)              (push service)
    sockets          = people x devices

and load into replicas: each service's CPU-ms per second (per send, per delivery, per socket,
per MiB of files) over what one replica may use (a Python process: one core x the headroom
target), at least the stated minimum; gateways also by memory and sockets per process; Redis and
MongoDB also by memory / storage; Redis's global presence keys must fit one shard. The part that
saturates first is the one closest to its capacity at the counts chosen.

    python -m bench.capacity                  the table for 10k / 100k / 1M people
    python -m bench.capacity --people 50000   another population
    python -m bench.capacity --write-doc      refresh the table in docs/scaling.md
    python -m bench.capacity --check [...]    one measured run, compared (bench/capacity_check.py)
"""
import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

INPUTS = Path(__file__).with_name("capacity_inputs.json")
DOC = Path(__file__).resolve().parents[1] / "docs" / "scaling.md"
TABLE_START, TABLE_END = "<!-- capacity-table:start -->", "<!-- capacity-table:end -->"
POPULATIONS = (10_000, 100_000, 1_000_000)
SECONDS_PER_DAY = 86_400
KiB, MiB = 1024, 1024 * 1024
# Services whose per-message cost is split between the send and its deliveries (the inputs'
# `per_send_share`); the rest of a figure is per delivery.
MESSAGE_SERVICES = ("gateway", "chat", "database", "rabbitmq", "redis")


def load_inputs(path: Path = INPUTS) -> dict[str, Any]:
    with open(path) as f:
        inputs: dict[str, Any] = json.load(f)
    return inputs


def demand(inputs: dict[str, Any], people: int) -> dict[str, float]:
    """What `people` connected at the peak hour ask for, per second (and storage per day)."""
    u = inputs["users"]
    daily_active = people / u["online_fraction"]
    sends = daily_active * u["messages_per_person_per_day"] / SECONDS_PER_DAY * u["peak_factor"]
    recipients = (1 - u["group_share"]) * 1 + u["group_share"] * (u["group_size"] - 1)
    devices = u["devices_per_person"]
    deliveries_per_send = recipients * u["recipient_online"] * devices + (devices - 1)
    files = inputs["files"]
    attachments = sends * files["attachment_share"]
    file_mib = attachments * files["mib_per_attachment"] * (1 + recipients * u["recipient_online"])
    return {
        "people": people, "daily_active": daily_active, "sockets": people * devices, "sends": sends,
        "recipients_per_send": recipients, "deliveries": sends * deliveries_per_send,
        "notifications": sends * recipients * (1 - u["recipient_online"]), "file_mib": file_mib,
        "stored_per_day": sends / u["peak_factor"] * SECONDS_PER_DAY,
    }


def spread(replicas: int) -> float:
    """The share of sends (chat replicas) or deliveries (gateways) that go to another replica than
    the previous one of the same conversation or pair: 0 with one, (n - 1) / n with n at random."""
    return (replicas - 1) / replicas


def per_message(inputs: dict[str, Any], chats: int, gateways: int) -> dict[str, Any]:
    """Per-message figures with `chats` chat replicas and `gateways` gateways: the one-of-each
    figures, plus what spreading over several replicas was measured to add (inputs' `spread`: a
    run with several chats and one gateway, and one the other way round), scaled by spread()."""
    base = inputs["measured"]
    cpu = dict(base["cpu_ms_per_message"])
    documents = base["documents_written_per_message"] + base["documents_read_per_message"]
    extra_documents = 0.0
    for layer, count in (("chats", chats), ("gateways", gateways)):
        wide = inputs.get("spread", {}).get(layer)
        if not wide or count <= 1:
            continue
        scale = spread(count) / spread(wide["replicas"])
        for service, cost in wide["cpu_ms_per_message"].items():
            cpu[service] = cpu.get(service, 0.0) + max(0.0, cost - base["cpu_ms_per_message"].get(service, 0.0)) * scale
        wide_documents = wide["documents_written_per_message"] + wide["documents_read_per_message"]
        extra_documents += max(0.0, wide_documents - documents) * scale
    return {"cpu_ms_per_message": cpu, "documents_per_message": documents + extra_documents}


def service_loads(inputs: dict[str, Any], load: dict[str, float], chats: int, gateways: int) -> dict[str, float]:
    """CPU-ms per second each part spends at `load` with these replicas: messages (the
    bench's figure is per delivered message in pairs, one send and one delivery: `per_send_share`
    of it follows sends, the rest deliveries), sockets' upkeep, files, push."""
    measured, files, push = inputs["measured"], inputs["files"], inputs["push"]
    costs = per_message(inputs, chats, gateways)["cpu_ms_per_message"]
    idle = {**measured["idle_cpu_ms_per_socket_second"], "redis": inputs["presence"]["cpu_ms_per_socket_second"]}
    cpu = {}
    for service in MESSAGE_SERVICES:
        share = inputs["per_send_share"][service]
        factor = inputs["engines"]["quorum_cost_factor"] if service == "rabbitmq" else 1.0
        cpu[service] = costs[service] * (share * load["sends"] * factor + (1 - share) * load["deliveries"])
        cpu[service] += load["sockets"] * idle.get(service, 0.0)
    for service, per_mib in files["cpu_ms_per_mib"].items():
        cpu[service] = cpu.get(service, 0.0) + load["file_mib"] * per_mib
    # Deciding (the messages.stored events, measured per message) and sending (assumed, per notification).
    cpu["push"] = load["sends"] * costs.get("push", 0.0) + load["notifications"] * push["cpu_ms_per_notification"]
    return cpu


def units(needed: float, capacity: float, minimum: int = 1) -> int:
    return max(minimum, math.ceil(needed / capacity - 1e-9))


def plan(inputs: dict[str, Any], people: int) -> dict[str, Any]:
    """Replicas, nodes and shards for `people`, what decided each count, and how busy each part is."""
    load = demand(inputs, people)
    minimum, room = inputs["replicas"]["minimum"], 1000.0 * inputs["headroom"]
    upkeep = inputs["measured"]["idle_cpu_percent_per_replica"]
    chats = gateways = minimum
    for _ in range(20):  # a message's cost depends on how many replicas share the work: settle the counts
        cpu = service_loads(inputs, load, chats, gateways)
        wanted = (units(cpu["chat"], room - 10 * upkeep.get("chat", 0.0), minimum),
                  units(cpu["gateway"], room - 10 * upkeep.get("gateway", 0.0), minimum),
                  units(load["sockets"], inputs["replicas"]["gateway_max_sockets"] * inputs["headroom"], minimum))
        if wanted[0] <= chats and max(wanted[1:]) <= gateways:
            break
        chats, gateways = max(chats, wanted[0]), max(gateways, *wanted[1:])
    head = inputs["headroom"]
    replica, eng, mem = inputs["replicas"], inputs["engines"], inputs["measured"]
    per_core = 1000.0 * head  # CPU-ms per second one core may use at the headroom target
    parts: dict[str, dict[str, Any]] = {}

    def part(name: str, needed: dict[str, float], capacity: dict[str, float], minimum: int, unit_cores: float) -> None:
        counts = {why: units(needed[why], capacity[why]) for why in needed}
        count = max(minimum, *counts.values())
        decided = max(counts, key=lambda why: counts[why]) if count > minimum else "minimum"
        use = {why: needed[why] / (capacity[why] / head * count) for why in needed}  # of 100 %, at `count`
        busiest = max(use, key=lambda why: use[why])
        parts[name] = {"count": count, "decided_by": decided, "utilisation": use[busiest], "busiest": busiest,
                       "cores": count * unit_cores}

    gateway_rss = load["sockets"] * mem["gateway_kib_per_bound_socket"] * KiB / MiB
    part("gateway", {"cpu": cpu["gateway"], "memory": gateway_rss, "sockets": load["sockets"]},
         {"cpu": per_core - 10 * upkeep.get("gateway", 0.0), "memory": replica["gateway_memory_mib"] * head,
          "sockets": replica["gateway_max_sockets"] * head}, replica["minimum"], 1)
    for name in ("chat", "push", "files"):
        part(name, {"cpu": cpu[name]}, {"cpu": per_core - 10 * upkeep.get(name, 0.0)}, replica["minimum"], 1)
    part("rabbitmq", {"cpu": cpu["rabbitmq"]}, {"cpu": per_core * eng["broker_node_cores"]},
         eng["broker_minimum_nodes"], eng["broker_node_cores"])
    redis_mib = load["sockets"] * eng["redis_bytes_per_socket"] / MiB
    part("redis", {"cpu": cpu["redis"], "memory": redis_mib},
         {"cpu": per_core, "memory": eng["redis_shard_memory_mib"] * head}, eng["redis_minimum_shards"], 1)
    # Every socket's refresh touches the expiry index, split into `presence_buckets` keys (one
    # slot each, PARLEY_REDIS_BUCKETS): the busiest shard holds ceil(buckets / shards) of them.
    buckets, shards = eng["presence_buckets"], parts["redis"]["count"]
    hot = load["sockets"] * inputs["presence"]["cpu_ms_per_socket_second"] * inputs["presence"]["global_key_share"]
    parts["redis"]["global_key_utilisation"] = hot * math.ceil(buckets / shards) / buckets / 1000.0
    db = inputs["database"]
    documents = load["sends"] * per_message(inputs, chats, gateways)["documents_per_message"]
    stored_tb = (load["stored_per_day"] * db["retention_days"] * mem["bytes_per_stored_message"]
                 * db["storage_overhead_factor"] / 1e12)
    part("mongodb", {"documents": documents, "storage": stored_tb},
         {"documents": db["shard_documents_per_second"] * head, "storage": db["shard_storage_tb"] * head},
         db["minimum_shards"], db["shard_cores"])
    parts["mongodb"]["embedded_cores"] = cpu["database"] / 1000.0
    first = max(parts, key=lambda name: max(parts[name]["utilisation"], parts[name].get("global_key_utilisation", 0)))
    return {"people": people, "load": load, "cpu_ms_per_second": cpu, "parts": parts, "first": first}


def first_label(p: dict[str, Any]) -> str:
    name = p["first"]
    part = p["parts"][name]
    hot = part.get("global_key_utilisation", 0.0)
    if hot > part["utilisation"]:
        return f"redis global presence keys ({hot:.0%} of one core)"
    return f"{name} {part['busiest']} ({part['utilisation']:.0%})"


def table(inputs: dict[str, Any], populations: tuple[int, ...] = POPULATIONS) -> str:
    """The result table as markdown: docs/scaling.md holds exactly this (a unit test checks it)."""
    plans = [plan(inputs, n) for n in populations]
    head = f"{inputs['headroom']:.0%}"
    lines = [f"| connected people | sends/s | deliveries/s | sockets | gateway | chat | push | files | broker nodes "
             f"| Redis shards | MongoDB shards | closest to saturation at these counts (target {head}) |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    def cell(part: dict[str, Any]) -> str:
        why = "" if part["decided_by"] in ("cpu", "minimum") else f" ({part['decided_by']})"
        return f"{part['count']}{why}"

    for p in plans:
        load, parts = p["load"], p["parts"]
        lines.append(f"| {p['people']:,} | {load['sends']:,.0f} | {load['deliveries']:,.0f} | {load['sockets']:,.0f} | "
                     + " | ".join(cell(parts[n]) for n in ("gateway", "chat", "push", "files", "rabbitmq", "redis", "mongodb"))
                     + f" | {first_label(p)} |")
    return "\n".join(lines)


def details(inputs: dict[str, Any], populations: tuple[int, ...] = POPULATIONS) -> str:
    """CPU-ms per second per part and each part's busiest resource at the chosen counts."""
    lines = []
    for people in populations:
        p = plan(inputs, people)
        cpu, parts, load = p["cpu_ms_per_second"], p["parts"], p["load"]
        lines.append(f"{people:,} people: " + ", ".join(
            f"{name} {cpu[name] / 1000:.1f} cores -> {parts[name]['count']} x {parts[name]['utilisation']:.0%}"
            for name in ("gateway", "chat", "push", "files", "rabbitmq", "redis"))
            + f"; mongodb {load['sends'] * per_message(inputs, parts['chat']['count'], parts['gateway']['count'])['documents_per_message']:,.0f} "
            "documents written or read/s, "
            f"{load['stored_per_day']:,.0f} messages/day -> {parts['mongodb']['count']} shards "
            f"({parts['mongodb']['busiest']} {parts['mongodb']['utilisation']:.0%}); the embedded stand-in would "
            f"spend {parts['mongodb']['embedded_cores']:.1f} cores")
    return "\n".join(lines)


def doc_table(text: str) -> str:
    """The table between the markers in docs/scaling.md."""
    start, end = text.index(TABLE_START) + len(TABLE_START), text.index(TABLE_END)
    return text[start:end].strip()


def write_doc(inputs: dict[str, Any], path: Path = DOC) -> None:
    text = path.read_text()
    start, end = text.index(TABLE_START) + len(TABLE_START), text.index(TABLE_END)
    path.write_text(f"{text[:start]}\n{table(inputs)}\n{text[end:]}")


def main() -> None:
    argv = sys.argv[1:]
    if "--check" in argv:  # the measured run has options of its own (and its own --help)
        from bench.capacity_check import main as check_main

        argv.remove("--check")
        check_main(argv)
        return
    parser = argparse.ArgumentParser(prog="python -m bench.capacity", description=__doc__.split("\n\n")[0])
    parser.add_argument("--inputs", type=Path, default=INPUTS, help="the model's inputs (default %(default)s)")
    parser.add_argument("--people", type=lambda s: tuple(int(float(x)) for x in s.split(",")), default=POPULATIONS,
                        help="comma-separated connected people (default 10000,100000,1000000)")
    parser.add_argument("--write-doc", action="store_true", help=f"refresh the table in {DOC}")
    parser.add_argument("--check", action="store_true",
                        help="one measured run compared with the model (its options: --check -h)")
    args = parser.parse_args(argv)
    inputs = load_inputs(args.inputs)
    print(table(inputs, args.people))
    print()
    print(details(inputs, args.people))
    if args.write_doc:
        write_doc(inputs)
        print(f"\ntable written to {DOC}", file=sys.stderr)


if __name__ == "__main__":
    main()
