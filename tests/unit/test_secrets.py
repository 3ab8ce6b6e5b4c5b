"""shared/settings.py refuse_unsafe_secrets: no service starts with a public or placeholder JWT secret
outside development (a token signed with it would be accepted)."""
import secrets
import subprocess
import sys

import pytest

from shared.settings import DEV_JWT_SECRET, Settings, UnsafeSecret, refuse_unsafe_secrets

UNSAFE = {
    "built-in": DEV_JWT_SECRET,
    "compose placeholder": "CHANGE-ME-to-a-long-random-string",
    "k8s placeholder": "CHANGE-ME-openssl-rand-hex-32",
    "short": "f3a9c1d2e4b5a6c7",
    "long but a placeholder": "please-change-me-" + "x" * 40,
}


@pytest.mark.parametrize("secret", UNSAFE.values(), ids=UNSAFE.keys())
def test_unsafe_secrets_are_refused_outside_development(secret):
    with pytest.raises(UnsafeSecret) as info:
        refuse_unsafe_secrets(Settings(jwt_secret=secret, environment="production"))
    assert "PARLEY_JWT_SECRET" in str(info.value)
    assert secret not in str(info.value)  # the message never repeats the secret


def test_the_default_environment_is_production():
    with pytest.raises(UnsafeSecret):
        refuse_unsafe_secrets(Settings(jwt_secret=DEV_JWT_SECRET))


@pytest.mark.parametrize("secret", UNSAFE.values(), ids=UNSAFE.keys())
def test_an_unsafe_turn_secret_is_refused_when_turn_is_configured(secret):
    jwt = secrets.token_hex(32)
    with pytest.raises(UnsafeSecret) as info:
        refuse_unsafe_secrets(
            Settings(jwt_secret=jwt, turn_urls=["turn:turn.example.com:3478"], turn_secret=secret, environment="production")
        )
    assert "PARLEY_TURN_SECRET" in str(info.value) and secret not in str(info.value)
    # No TURN URL: the secret is never used, nothing to refuse.
    refuse_unsafe_secrets(Settings(jwt_secret=jwt, turn_secret=secret, environment="production"))


def test_a_long_random_secret_is_accepted():
    refuse_unsafe_secrets(Settings(jwt_secret=secrets.token_hex(32), environment="production"))


@pytest.mark.parametrize("secret", UNSAFE.values(), ids=UNSAFE.keys())
def test_development_accepts_anything(secret):
    refuse_unsafe_secrets(Settings(jwt_secret=secret, environment="development"))


@pytest.mark.parametrize("module", ["services.auth.main", "services.gateway.main"])
def test_a_service_with_the_built_in_secret_exits_with_the_reason_and_no_traceback(module, tmp_path):
    env = {"PATH": "/usr/bin:/bin", "PARLEY_JWT_SECRET": DEV_JWT_SECRET, "PARLEY_ENVIRONMENT": "production"}
    done = subprocess.run(
        [sys.executable, "-m", module], env=env, capture_output=True, text=True, timeout=60, cwd=str(_root())
    )
    assert done.returncode != 0
    assert "refusing to start" in done.stderr and "PARLEY_JWT_SECRET" in done.stderr
    assert "Traceback" not in done.stderr


def _root():
    from pathlib import Path

    return Path(__file__).resolve().parents[2]
