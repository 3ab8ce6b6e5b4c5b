"""calls: the process (services/calls/service.py declares what it is made of)."""
from services.calls.service import CallsService
from shared.runtime import run

if __name__ == "__main__":
    run(CallsService)
