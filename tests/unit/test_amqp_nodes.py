"""PARLEY_AMQP_URL with a cluster's nodes (shared/amqp_nodes.py): parsed, tried in turn, and
the aio-pika seam the reconnection to another node rests on still there."""
import pytest
from aio_pika import RobustConnection

from deploy.local.devstack import free_port
from shared.amqp_nodes import amqp_urls, connect_first, connect_with_retry, node_order
from shared.settings import Settings


def test_one_url_or_several_separated_by_commas() -> None:
    assert amqp_urls("amqp://a:5672/") == ["amqp://a:5672/"]
    assert amqp_urls(" amqp://a:5672/ , amqp://b:5672/,") == ["amqp://a:5672/", "amqp://b:5672/"]
    with pytest.raises(ValueError, match="PARLEY_AMQP_URL is empty"):
        amqp_urls(" , ")


def test_queue_type_is_read_under_its_new_and_its_older_name(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().queue_type == "quorum"
    monkeypatch.setenv("PARLEY_COMMAND_QUEUE_TYPE", "classic")
    assert Settings().queue_type == "classic"
    monkeypatch.setenv("PARLEY_QUEUE_TYPE", "quorum")
    assert Settings().queue_type == "quorum"


def test_the_seam_reconnection_to_another_node_rests_on_is_there() -> None:
    """ClusterConnection moves to the next node in the method aio-pika opens every transport in:
    an upgrade that renames it would silently pin a process to its first node."""
    assert callable(getattr(RobustConnection, "_RobustConnection__connect_transport", None))


async def test_a_dead_node_first_in_the_list_is_passed_over(settings: Settings) -> None:
    dead = f"amqp://guest:guest@127.0.0.1:{free_port()}/"
    connection = await connect_with_retry(f"{dead},{settings.amqp_url}", deadline_seconds=5)
    try:
        assert connection.connected.is_set()
        assert str(connection.url).endswith(settings.amqp_url.rsplit("@", 1)[1])
    finally:
        await connection.close()
    plain = await connect_first(f"{dead},{settings.amqp_url}")
    await plain.close()


async def test_no_node_answering_says_which_were_tried() -> None:
    dead = [f"amqp://guest:secret@127.0.0.1:{free_port()}/" for _ in range(2)]
    with pytest.raises(RuntimeError, match="RabbitMQ is not reachable at") as failed:
        await connect_with_retry(",".join(dead), deadline_seconds=0)
    assert all(url.replace("secret", "******") in str(failed.value) for url in dead)
    assert "secret" not in str(failed.value)


def test_processes_start_at_any_node_of_a_cluster_and_go_round_the_list_from_there() -> None:
    """All connections on the first node put every quorum queue's leader there too (RabbitMQ
    places it on the declaring connection's node): one node's kill hits every service at once."""
    urls = ["amqp://a/", "amqp://b/", "amqp://c/"]
    firsts = {node_order(urls, start_anywhere=True)[0] for _ in range(200)}
    assert firsts == set(urls)
    assert node_order(urls, start_anywhere=True, pick=lambda n: 2) == ["amqp://c/", "amqp://a/", "amqp://b/"]
    assert node_order(urls, start_anywhere=False) == urls
    assert node_order(["amqp://only/"], start_anywhere=True) == ["amqp://only/"]
