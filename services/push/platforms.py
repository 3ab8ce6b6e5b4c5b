"""The providers this replica runs, by kind, made from the settings: a provider not configured
(no VAPID key, no FCM project, no APNs key) is absent, and `push.subscribe` refuses its kind.
Each provider's module is imported only here and only when asked, so a deployment without a
platform's libraries still runs the others."""
import importlib
import logging
from typing import Any

from services.push.domain.ports import Provider
from shared.contracts.push import ProviderKind
from shared.logs import log_event
from shared.settings import Settings

log = logging.getLogger("parley.push")

# kind → (module under services.push.providers, its provider class with `from_settings`)
MODULES: dict[ProviderKind, tuple[str, str]] = {
    "webpush": ("webpush", "WebPushProvider"),
    "fcm": ("fcm", "FcmProvider"),
    "apns": ("apns", "ApnsProvider"),
}


def build_providers(settings: Settings) -> dict[ProviderKind, Provider]:
    providers: dict[ProviderKind, Provider] = {}
    for kind, (module_name, class_name) in MODULES.items():
        try:
            module = importlib.import_module(f"services.push.providers.{module_name}")
        except ImportError as exc:
            log_event(log, "push.provider_missing", logging.WARNING, provider=kind, error=repr(exc))
            continue
        made: Any = getattr(module, class_name).from_settings(settings)
        if made is None:
            log_event(log, "push.provider_off", provider=kind)
            continue
        providers[kind] = made
    log_event(log, "push.providers", providers=sorted(providers))
    return providers
