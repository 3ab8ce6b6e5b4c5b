"""The push platforms behind the `Provider` port (services/push/domain/ports.py)."""
