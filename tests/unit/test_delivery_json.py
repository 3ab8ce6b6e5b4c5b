"""Deliveries go to the gateways as the same bytes pydantic's serializer made of them."""
from shared.broker import delivery_json, dumps
from shared.contracts.batches import Deliveries
from shared.contracts.envelope import Push
from shared.contracts.wire import Delivery, DeviceAddress
from tests.unit.test_message_json import VARIANTS


def test_delivery_json_is_the_models_bytes() -> None:
    pushes = [Push(type="message.new", data=m.contract_json()) for m in VARIANTS]
    pushes.append(Push(type="receipt.delivered", data={"conversation_id": "d:a:b", "user_id": "u_b", "seq": 3}))
    live = Delivery(targets=[DeviceAddress(user_id="u_b", device_id="phone"), DeviceAddress(user_id="u_a", device_id="web")],
                    pushes=pushes)
    sync = Delivery(targets=[DeviceAddress(user_id="u_b", device_id="phone")], conn_id="c1", sync=True, pushes=pushes[:2])
    empty = Delivery(pushes=[])
    for delivery in (live, sync, empty):
        assert delivery_json(delivery) == dumps(delivery)
    batch = Deliveries(items=[live, sync, empty])
    assert delivery_json(batch) == dumps(batch)
