"""parley-bench --sweep, its pure parts: the rates it takes, when it stops, its table and its plot;
and that a step on reused sockets ignores an earlier step's stragglers."""
import struct
from types import SimpleNamespace
from typing import Any

import pytest

from bench.load import Tally, record_deliveries
from bench.sweep import overload, parse_rates, plot_sweep, sweep_table, sweep_title
from bench.wsclient import stamped_text


def step(rate: float, delivered: float, p99: float | None, fanout: float = 2.0, lost: int = 0) -> dict[str, Any]:
    """The figures chat_step returns, as far as the sweep reads them."""
    lat = {"p50": None if p99 is None else p99 / 4, "p95": None if p99 is None else p99 / 2, "p99": p99,
           "max": None if p99 is None else p99 * 1.5, "n": 10}
    return {
        "users": 10, "senders": 10, "pairs_users": 4, "group_users": 6, "group_size": 4, "text_chars": 100,
        "seconds": 3.0, "offered_rate": rate, "sent_per_second": rate, "fanout": fanout,
        "deliveries_offered_per_second": rate * fanout, "delivered_per_second": delivered,
        "latency_ms": lat, "reply_latency_ms": {"p50": 3.0, "p95": 5.0, "p99": 8.0, "max": 9.0, "n": 10},
        "lost": lost, "duplicated": 0, "send_errors": {"internal": 2},
        "processes": {"gateway": {"cpu_percent": 12.5}, "chat": {"cpu_percent": 40.0}, "mongo": {"cpu_percent": 80.0}},
    }


@pytest.mark.parametrize(("text", "rates"), [("100,200,500,1000", [100.0, 200.0, 500.0, 1000.0]),
                                             (" 50, 75.5 ,", [50.0, 75.5]), ("300", [300.0])])
def test_parse_rates(text: str, rates: list[float]) -> None:
    assert parse_rates(text) == rates


@pytest.mark.parametrize(("text", "why"), [("", "at least one"), (",", "at least one"), ("100,fast", "comma-separated"),
                                           ("0,100", "positive"), ("-5", "positive"), ("nan", "positive"),
                                           ("inf", "positive"), ("200,100", "rise"), ("100,100", "rise")])
def test_parse_rates_refuses(text: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        parse_rates(text)


def test_a_step_that_keeps_up_is_not_overloaded() -> None:
    assert overload(step(100, delivered=199.0, p99=40.0)) is None
    assert overload(step(100, delivered=140.0, p99=1_999.0)) is None  # exactly 70 % of 200/s still passes


def test_too_few_deliveries_per_second_is_overload() -> None:
    reason = overload(step(100, delivered=139.0, p99=40.0))
    assert reason is not None and "139.0/s < 70% of the 200.0/s offered" in reason
    assert overload(step(100, delivered=0.0, p99=None)) is not None  # nothing arrived at all


def test_a_p99_over_two_seconds_is_overload() -> None:
    reason = overload(step(100, delivered=200.0, p99=2_500.0))
    assert reason is not None and "p99 2,500 ms > 2,000 ms" in reason


def test_sweep_table_has_a_row_per_rate_and_a_cpu_row_per_rate() -> None:
    steps = [step(50, 100.0, 30.0), step(100, 120.0, 3_000.0)]
    for s in steps:
        s["overloaded"] = overload(s)
    lines = sweep_table(steps).splitlines()
    rows = [line for line in lines if line.split() and line.split()[0] in ("50", "100")]
    assert len(rows) == 4  # throughput/latency rows, then cpu rows
    assert rows[0].endswith("ok") and rows[1].endswith("OVERLOADED")
    assert "3,000.0" in rows[1] and rows[2].split()[1:] == ["12.5", "40.0", "80.0"]
    assert "gateway" in lines[lines.index(rows[1]) + 3]


def test_plot_writes_a_png_of_the_sweep(tmp_path) -> None:
    steps = [step(50, 100.0, 20.0), step(100, 200.0, 45.0), step(200, 250.0, 2_600.0)]
    for s in steps:
        s["overloaded"] = overload(s)
    path = tmp_path / "sweep.png"
    plot_sweep(steps, str(path), sweep_title(steps, cpus=2))
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])  # IHDR: 12 x 5 inches at 100 dpi
    assert (width, height) == (1200, 500)
    assert len(data) > 20_000  # two panels of lines and text, not a blank canvas


def test_sweep_title_names_the_load_and_the_cpus() -> None:
    assert sweep_title([step(50, 100.0, 20.0)], cpus=2) == (
        "parley-bench --sweep: 10 users (4 in pairs, 6 in groups of 4), 100-char texts, 3 s per step, 2 CPUs")


def test_a_step_ignores_stragglers_of_an_earlier_step() -> None:
    clients = [SimpleNamespace(on_message=None), SimpleNamespace(on_message=None)]
    tally = Tally()
    record_deliveries(clients, tally)  # type: ignore[arg-type]
    tally.expected["now"] = [1]
    clients[1].on_message({"text": stamped_text("earlier", 100)}, 0)
    assert tally.received == set() and tally.latencies_ms == []
    clients[1].on_message({"text": stamped_text("now", 100)}, 0)
    assert tally.received == {(1, "now")} and tally.outstanding() == 0
