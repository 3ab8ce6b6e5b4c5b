"""chat: the process (services/chat/parts.py declares what it is made of, service.py what it does)."""
from services.chat.service import ChatService
from shared.runtime import run

if __name__ == "__main__":
    run(ChatService)
