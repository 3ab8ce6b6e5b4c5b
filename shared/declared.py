"""Services with declared parts, nameko's shape: a service class says what it is made of (its
stores, the remote services it calls, its tools) as class attributes, and binds its handlers with
`@operation`, `@event` and `@periodic`. The runner reads the bindings; nothing is wired by hand.

    class AuthService(Service):
        name = "auth"
        users = part(lambda rt, s: MongoUserStore(rt.db))
        avatars = part(lambda rt, s: FilesAvatars(rt.rpc()))

        @operation("auth.register")
        async def register(self, request: auth.Register, caller: Caller) -> auth.RegisterReply: ...

        @periodic("revocations.cache", every=lambda settings: 1.0)
        async def keep_revocation_cache(self) -> None: ...

A part is made from the process's clients (`Runtime`) and the parts declared before it, in
declaration order; a store's indexes are ensured when the service is built. Tests build a service
the same way and give the parts they replace: `await ChatService.build(rt, files=StaticFiles())`,
then ask it through `service.router().dispatch(...)` as RabbitMQ would.
"""
import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, Self, TypeVar, overload

from shared.redis_slots import RedisClient

from shared.broker import Broker, RpcClient
from shared.contracts.operations import OPERATIONS
from shared.contracts.wire import Caller, Command
from shared.periodic import Periodic
from shared.service import Router
from shared.settings import Settings
from shared.stores import Database, MongoClient, mongo_ping

T = TypeVar("T")


@dataclass(frozen=True)
class Runtime:
    """The clients a process holds once, which parts are made from. Outside a service process (a
    unit test) the broker is absent: parts that need it are given instead of made."""

    settings: Settings
    db: Database
    redis: RedisClient
    mongo: MongoClient | None = None
    broker_: Broker | None = None
    rpc_: RpcClient | None = None
    instance_id: str = "local"  # this process, among the replicas of its service

    def broker(self) -> Broker:
        if self.broker_ is None:
            raise LookupError("this part needs the message broker: give it to Service.build instead")
        return self.broker_

    def rpc(self) -> RpcClient:
        if self.rpc_ is None:
            raise LookupError("this part calls other services: give it to Service.build instead")
        return self.rpc_


class Part(Generic[T]):
    """A declared part: how to make it. On an instance, the part itself."""

    def __init__(self, make: Callable[[Runtime, Any], T]):
        self.make = make
        self.name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, instance: None, owner: type) -> "Part[T]": ...

    @overload
    def __get__(self, instance: object, owner: type) -> T: ...

    def __get__(self, instance: object | None, owner: type) -> "T | Part[T]":
        if instance is None:
            return self
        try:
            return instance.__dict__[self.name]  # type: ignore[no-any-return]
        except KeyError:
            raise AttributeError(f"{type(instance).__name__}.{self.name} is not built yet") from None


def part(make: Callable[[Runtime, Any], T]) -> T:
    """Declare a part made by `make(runtime, service)` (the service: for parts made of others).
    Typed as the part itself, which is what an instance's attribute is."""
    return Part(make)  # type: ignore[return-value]


@dataclass(frozen=True)
class Binding:
    kind: str  # operation | event | periodic
    name: str
    timeout: float | None = None
    every: Callable[[Settings], float] | None = None
    once_across_replicas: bool = False


def _bind(binding: Binding) -> Callable[[Callable[..., Awaitable[Any]]], Callable[..., Awaitable[Any]]]:
    def mark(method: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        method.__parley_binding__ = binding  # type: ignore[attr-defined]
        return method

    return mark


def operation(name: str, timeout: float | None = None) -> Callable[[Callable[..., Awaitable[Any]]], Callable[..., Awaitable[Any]]]:
    """Answer the operation `name` (shared/contracts/operations.py): `(self, request, caller) -> reply`."""
    return _bind(Binding("operation", name, timeout=timeout))


def event(name: str) -> Callable[[Callable[..., Awaitable[Any]]], Callable[..., Awaitable[Any]]]:
    """Consume the domain event `name` from `<ns>.events`: `(self, event) -> None`."""
    return _bind(Binding("event", name))


def periodic(
    name: str, every: Callable[[Settings], float], once_across_replicas: bool = False
) -> Callable[[Callable[..., Awaitable[Any]]], Callable[..., Awaitable[Any]]]:
    """Run `(self) -> None` about every `every(settings)` seconds while the service runs; with
    `once_across_replicas`, only the replica holding the job's lease runs it (shared/periodic.py)."""
    return _bind(Binding("periodic", name, every=every, once_across_replicas=once_across_replicas))


class Service:
    """Base of every service class: its parts, built once; its bindings, read into a Router."""

    name: ClassVar[str]
    # Whether the process needs MongoDB: a service that keeps no collection (calls) does not wait
    # for it at start-up, and its health does not ask it.
    uses_database: ClassVar[bool] = True

    def __init__(self, rt: Runtime):
        self.rt = rt
        self.settings = rt.settings

    @classmethod
    def declared_parts(cls) -> list[Part[Any]]:
        """Every part of the class and its bases, in declaration order (bases first)."""
        found: dict[str, Part[Any]] = {}
        for klass in reversed(cls.__mro__):
            for name, value in vars(klass).items():
                if isinstance(value, Part):
                    found[name] = value
        return list(found.values())

    @classmethod
    async def build(cls, rt: Runtime, **given: Any) -> Self:
        """Make every part not `given`, in order; then ensure the indexes of every part that has
        them (its stores). Unknown names in `given` are a mistake, not ignored."""
        service = cls(rt)
        names = {p.name for p in cls.declared_parts()}
        unknown = set(given) - names
        if unknown:
            raise TypeError(f"{cls.__name__} declares no part named {', '.join(sorted(unknown))}")
        for declared in cls.declared_parts():
            service.__dict__[declared.name] = given[declared.name] if declared.name in given else declared.make(rt, service)
        for declared in cls.declared_parts():
            ensure = getattr(service.__dict__[declared.name], "ensure_indexes", None)
            if ensure is not None and declared.name not in given:
                await ensure()
        return service

    def events_queue_arguments(self) -> dict[str, Any]:
        """Bounds of this service's events queue (`<ns>.<service>.events`) beyond the commands
        queue's arguments: for a consumer whose events lose their worth with age (push), so that
        an outage of it cannot heap them up. By default none: chat's events must all be seen."""
        return {}

    async def close(self) -> None:
        """Release what the parts hold beyond the process's clients (HTTP connection pools), at
        the end of the run; by default nothing."""

    async def health(self) -> None:
        """What `<service>.health` checks (/readyz asks it): by default the database answers."""
        if self.rt.mongo is not None:
            await mongo_ping(self.rt.mongo)

    def router(self) -> Router:
        """The operations, events and periodic jobs this service binds, ready for the runner."""
        router = Router(self.name)
        router.events_arguments = self.events_queue_arguments()
        for _, method in inspect.getmembers(self, inspect.ismethod):
            binding: Binding | None = getattr(method, "__parley_binding__", None)
            if binding is None:
                continue
            if binding.kind == "operation":
                router.operation(binding.name, binding.timeout)(method)
            elif binding.kind == "event":
                router.event(binding.name)(method)
            else:
                assert binding.every is not None
                router.periodic(Periodic(
                    binding.name, binding.every(self.settings), method, binding.once_across_replicas
                ))
        router.health(self.health)
        return router


async def ask(service: Service, operation_name: str, data: dict[str, Any], caller: Caller) -> Any:
    """One operation through the service's router, as the runner does for a command from RabbitMQ
    (the request validated, the handler run): what unit tests call."""
    return await service.router().dispatch(OPERATIONS[operation_name].routing_key, Command(caller=caller, data=data))
