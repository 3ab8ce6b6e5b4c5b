"""`make test-repeat` reads pytest's closing line as a person would: counts, time, failures."""
from tests.repeat import OUTCOME, SUMMARY, Run, parse_counts


def test_the_closing_line_gives_the_counts_and_the_time() -> None:
    line = "======= 2 failed, 750 passed, 6 skipped, 1 error in 841.02s (0:14:01) ======="
    match = SUMMARY.match(line)
    assert match is not None and float(match["seconds"]) == 841.02
    assert parse_counts(match["counts"]) == {"failed": 2, "passed": 750, "skipped": 6, "error": 1}


def test_a_run_is_green_only_with_exit_0_and_nothing_failed() -> None:
    run = Run(1, log=None, exit_code=0, counts={"passed": 752, "skipped": 6})  # type: ignore[arg-type]
    assert run.green
    assert not Run(1, log=None, exit_code=0, counts={"passed": 751, "error": 1}).green  # type: ignore[arg-type]
    assert not Run(1, log=None, exit_code=2, counts={"passed": 752}).green  # type: ignore[arg-type]


def test_failed_tests_are_named() -> None:
    line = "FAILED tests/unit/test_send_rate.py::test_without_redis - AttributeError: ..."
    match = OUTCOME.match(line)
    assert match is not None and (match[1], match[2]) == ("FAILED", "tests/unit/test_send_rate.py::test_without_redis")
