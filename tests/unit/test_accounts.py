"""services/auth/domain/accounts.py: registering, logging in, search and profiles, on a real store."""
import asyncio

import pytest
from argon2 import PasswordHasher

from services.auth.domain import accounts
from services.auth.domain.accounts import Passwords
from services.auth.storage.users import MongoUserStore
from shared.contracts.auth import Login, Register, UserSearch, UsersGet
from shared.contracts.errors import ErrorCode, ParleyError
from shared.tokens import TokenCodec

SECRET = "unit-test-secret-that-is-long-enough-for-hs256"
PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def passwords() -> Passwords:
    return Passwords(PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1))


@pytest.fixture
async def users(db) -> MongoUserStore:
    store = MongoUserStore(db)
    await store.ensure_indexes()
    return store


@pytest.fixture
def tokens() -> TokenCodec:
    return TokenCodec(SECRET, 3600)


async def register(users, passwords, username, display_name=None, password=PASSWORD):
    return await accounts.register(Register(username=username, password=password, display_name=display_name), users, passwords)


async def test_register_then_login(users, passwords, tokens):
    registered = await register(users, passwords, "alice", "Alice Liddell")
    assert registered.username == "alice"

    reply = await accounts.login(Login(username="alice", password=PASSWORD, device_id="phone"), users, passwords, tokens)

    assert reply.user_id == registered.user_id
    claims = tokens.verify(reply.token)
    assert (claims.user_id, claims.device_id) == (registered.user_id, "phone")
    assert reply.expires_at.endswith("Z")


async def test_login_with_other_case_of_username(users, passwords, tokens):
    registered = await register(users, passwords, "Alice")
    assert registered.username == "alice"
    reply = await accounts.login(Login(username="ALICE", password=PASSWORD), users, passwords, tokens)
    assert reply.user_id == registered.user_id
    assert tokens.verify(reply.token).device_id == "default"


async def test_taken_username_is_conflict_and_stores_nothing_more(db, users, passwords):
    await register(users, passwords, "alice")
    with pytest.raises(ParleyError) as info:
        await register(users, passwords, "alice", password="another password")
    assert info.value.code == ErrorCode.CONFLICT
    assert await db["users"].count_documents({}) == 1


async def test_username_differing_only_in_case_is_taken(db, users, passwords):
    await register(users, passwords, "Alice")
    with pytest.raises(ParleyError) as info:
        await register(users, passwords, "alice")
    assert info.value.code == ErrorCode.CONFLICT
    assert await db["users"].count_documents({}) == 1


async def test_concurrent_registrations_of_one_name_make_one_user(db, users, passwords):
    results = await asyncio.gather(
        *(register(users, passwords, name) for name in ("bob", "Bob", "BOB", "bob")), return_exceptions=True
    )
    assert sum(not isinstance(r, Exception) for r in results) == 1
    assert all(r.code == ErrorCode.CONFLICT for r in results if isinstance(r, ParleyError))
    assert await db["users"].count_documents({}) == 1


async def test_wrong_password_and_unknown_user_get_the_same_answer(users, passwords, tokens):
    await register(users, passwords, "alice")
    errors = []
    for username, password in (("alice", "wrong password"), ("nobody", PASSWORD)):
        with pytest.raises(ParleyError) as info:
            await accounts.login(Login(username=username, password=password), users, passwords, tokens)
        errors.append(info.value)
    assert [e.code for e in errors] == [ErrorCode.UNAUTHORIZED] * 2
    assert errors[0].message == errors[1].message


async def test_password_is_stored_only_as_an_argon2id_hash(db, users, passwords):
    registered = await register(users, passwords, "alice")
    doc = await db["users"].find_one({"_id": registered.user_id})
    assert doc["password_hash"].startswith("$argon2id$")
    assert PASSWORD not in str(doc)


async def test_login_upgrades_a_hash_made_with_weaker_parameters(db, users, passwords, tokens):
    registered = await register(users, passwords, "alice")
    before = (await db["users"].find_one({"_id": registered.user_id}))["password_hash"]
    stronger = Passwords(PasswordHasher(time_cost=2, memory_cost=8192, parallelism=1))

    await accounts.login(Login(username="alice", password=PASSWORD), users, stronger, tokens)

    after = (await db["users"].find_one({"_id": registered.user_id}))["password_hash"]
    assert after != before
    assert after.startswith("$argon2id$") and "t=2" in after
    assert await accounts.login(Login(username="alice", password=PASSWORD), users, stronger, tokens)


async def test_display_name_defaults_to_username(users, passwords):
    registered = await register(users, passwords, "alice")
    reply = await accounts.get_profiles(UsersGet(user_ids=[registered.user_id]), users)
    assert reply.users[0].display_name == "alice"


async def search(users, query):
    reply = await accounts.search_users(UserSearch(query=query), users)
    return sorted(u.username for u in reply.users)


async def test_search_by_prefix_of_username_or_display_name_case_insensitive(users, passwords):
    await register(users, passwords, "alice", "Wonder Land")
    await register(users, passwords, "alfred", "Butler")
    await register(users, passwords, "bob", "Alpha Bravo")
    await register(users, passwords, "malice", "Mal")

    assert await search(users, "al") == ["alfred", "alice", "bob"]  # bob by display name
    assert await search(users, "ALI") == ["alice"]
    assert await search(users, "wonder") == ["alice"]
    assert await search(users, "  Butl ") == ["alfred"]
    assert await search(users, "lice") == []  # infix of "alice" and "malice"
    assert await search(users, "land") == []  # infix of a display name
    assert await search(users, "zed") == []


async def test_search_returns_at_most_20_users_in_username_order(users, passwords):
    for i in range(25):
        await register(users, passwords, f"user{i:02d}")
    assert await search(users, "user") == [f"user{i:02d}" for i in range(20)]


async def test_search_does_not_treat_the_query_as_a_pattern(users, passwords):
    await register(users, passwords, "alice")
    await register(users, passwords, "a.b", "Dotty")
    assert await search(users, ".") == []
    assert await search(users, "a.") == ["a.b"]
    assert await search(users, "a*") == []


async def test_search_returns_profiles_without_secrets(users, passwords):
    registered = await register(users, passwords, "alice", "Alice L")
    reply = await accounts.search_users(UserSearch(query="ali"), users)
    assert [u.model_dump() for u in reply.users] == [
        {"user_id": registered.user_id, "username": "alice", "display_name": "Alice L", "avatar_url": None}
    ]


async def test_get_profiles_returns_known_users_once(users, passwords):
    alice = await register(users, passwords, "alice", "Alice")
    bob = await register(users, passwords, "bob", "Bobby")
    reply = await accounts.get_profiles(
        UsersGet(user_ids=[alice.user_id, bob.user_id, alice.user_id, "u_missing"]), users
    )
    assert sorted((u.user_id, u.username, u.display_name) for u in reply.users) == sorted(
        [(alice.user_id, "alice", "Alice"), (bob.user_id, "bob", "Bobby")]
    )


class CountingPasswords(Passwords):
    """The real hasher, counting how many times a password was checked (argon2 work)."""

    verified = 0

    async def verify(self, password_hash, password):
        self.verified += 1
        return await super().verify(password_hash, password)


async def test_a_throttled_login_costs_no_password_check(settings, users, tokens):
    from services.auth.domain.limits import GateRule, LoginRules, LoginThrottle
    from services.auth.storage.limits import RedisGates
    from tests.unit.helpers import redis_namespace

    counting = CountingPasswords(PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1))
    await register(users, counting, "alice")
    rule = GateRule(free=2, base_seconds=60, max_seconds=60, window_seconds=600)
    async with redis_namespace(settings) as (redis, namespace):
        throttle = LoginThrottle(RedisGates(redis, namespace), LoginRules(rule, rule, GateRule(10, 1, 10, 600)))
        codes = []
        for _ in range(6):
            with pytest.raises(ParleyError) as info:
                await accounts.login(Login(username="alice", password="wrong!!!"), users, counting, tokens, throttle, "6.6.6.6")
            codes.append(info.value.code)
        assert codes == [ErrorCode.UNAUTHORIZED] * 3 + [ErrorCode.RATE_LIMITED] * 3
        assert counting.verified == 3
        # the right password from another address still works
        reply = await accounts.login(Login(username="alice", password=PASSWORD), users, counting, tokens, throttle, "10.1.1.1")
        assert reply.token


async def test_registrations_past_the_address_limit_are_rate_limited_and_store_nothing(db, settings, users, passwords):
    from services.auth.domain.limits import RegistrationLimit
    from services.auth.storage.limits import RedisRateBucket
    from tests.unit.helpers import redis_namespace

    async with redis_namespace(settings) as (redis, namespace):
        limit = RegistrationLimit(RedisRateBucket(redis, namespace, "register", 1 / 3600, 2))
        for name in ("ann", "bea"):
            await accounts.register(Register(username=name, password=PASSWORD), users, passwords, limit, "6.6.6.6")
        with pytest.raises(ParleyError) as info:
            await accounts.register(Register(username="cat", password=PASSWORD), users, passwords, limit, "6.6.6.6")
        assert info.value.code == ErrorCode.RATE_LIMITED
        assert await db["users"].count_documents({}) == 2
        await accounts.register(Register(username="cat", password=PASSWORD), users, passwords, limit, "10.1.1.1")
