"""auth: the process (services/auth/service.py declares what it is made of)."""
from services.auth.service import AuthService
from shared.runtime import run

if __name__ == "__main__":
    run(AuthService)
