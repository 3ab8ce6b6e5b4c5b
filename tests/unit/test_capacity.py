"""The capacity model (bench/capacity.py): docs/scaling.md's table is the script's output for the
checked-in inputs, the model's arithmetic holds, and --check's prediction reproduces a run that
behaves exactly as its inputs say."""
import copy
from typing import Any

import pytest

from bench.capacity import DOC, POPULATIONS, demand, doc_table, load_inputs, per_message, plan, table
from bench.capacity_check import predict, service_of


def test_the_doc_table_is_the_scripts_output() -> None:
    assert doc_table(DOC.read_text()) == table(load_inputs()), (
        "docs/scaling.md's table differs from the model: run `python -m bench.capacity --write-doc`")


def test_demand_follows_the_stated_behaviour() -> None:
    inputs = load_inputs()
    u = inputs["users"]
    load = demand(inputs, 30_000)
    daily = 30_000 / u["online_fraction"]
    assert load["sends"] == pytest.approx(daily * u["messages_per_person_per_day"] / 86_400 * u["peak_factor"])
    assert load["sockets"] == pytest.approx(30_000 * u["devices_per_person"])
    assert load["deliveries"] >= load["sends"] * u["recipient_online"]


def test_more_people_never_need_fewer_replicas() -> None:
    inputs = load_inputs()
    plans = [plan(inputs, n) for n in (*POPULATIONS, 3_000_000)]
    for smaller, larger in zip(plans, plans[1:], strict=False):
        for name, part in smaller["parts"].items():
            assert larger["parts"][name]["count"] >= part["count"], name


def test_every_part_stays_under_the_headroom_target() -> None:
    inputs = load_inputs()
    for people in POPULATIONS:
        for name, part in plan(inputs, people)["parts"].items():
            assert part["utilisation"] <= inputs["headroom"] + 1e-9, (people, name)


def test_a_run_that_behaves_as_the_inputs_say_is_predicted_exactly() -> None:
    inputs = copy.deepcopy(load_inputs())
    inputs["spread"] = {}  # per-message costs as measured with one of each, whatever the layout
    m = inputs["measured"]
    m["cpu_ms_per_message"] = {"gateway": 0.3, "chat": 0.2, "database": 0.6, "rabbitmq": 0.06}
    m["idle_cpu_percent_per_replica"] = {"gateway": 0.5, "chat": 0.4}
    m["idle_cpu_ms_per_socket_second"] = {"gateway": 0.002}
    replicas = {"gateway": 3, "chat": 3}
    rate, sockets, pairs = 900.0, 1000, 100
    all_sockets = sockets + 2 * pairs
    cpu: dict[str, Any] = {}
    for label in ("gateway1", "gateway2", "gateway3", "chat1", "chat2", "chat3", "mongo", "rabbitmq"):
        service = service_of(label)
        n = replicas.get(service, 1)
        percent = (m["idle_cpu_percent_per_replica"].get(service, 0.0)
                   + m["idle_cpu_ms_per_socket_second"].get(service, 0.0) * all_sockets / n / 10
                   + rate * m["cpu_ms_per_message"][service] / n / 10)
        cpu[label] = {"cpu_percent": percent}
    run = {"idle_sockets": sockets, "cpus": 2,
           "pairs": {"pairs": pairs, "delivered_per_second": rate, "cpu": cpu, "other_cpu_percent": 0.0}}
    predicted = predict(inputs, run, replicas)
    for label, figures in cpu.items():
        assert predicted["per_process"][label]["predicted"] == pytest.approx(figures["cpu_percent"])
    # Every core spent: (200 % - upkeep) over the per-message costs.
    assert predicted["throughput"] > rate


def test_spreading_over_replicas_adds_what_was_measured_scaled() -> None:
    inputs = copy.deepcopy(load_inputs())
    base = inputs["measured"]["cpu_ms_per_message"]["chat"]
    inputs["spread"] = {"chats": {**inputs["measured"], "replicas": 3,
                                  "cpu_ms_per_message": {**inputs["measured"]["cpu_ms_per_message"], "chat": base + 0.3}}}
    one = plan_costs(inputs, 1)
    assert one == pytest.approx(base)
    assert plan_costs(inputs, 3) == pytest.approx(base + 0.3)
    assert plan_costs(inputs, 2) == pytest.approx(base + 0.3 * (1 / 2) / (2 / 3))


def plan_costs(inputs: dict[str, Any], chats: int) -> float:
    cost: float = per_message(inputs, chats, 1)["cpu_ms_per_message"]["chat"]
    return cost
