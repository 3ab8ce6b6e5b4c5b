"""push: the process (services/push/service.py declares what it is made of)."""
from services.push.service import PushService
from shared.runtime import run

if __name__ == "__main__":
    run(PushService)
