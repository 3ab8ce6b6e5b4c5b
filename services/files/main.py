"""files: the process (services/files/service.py declares what it is made of)."""
from services.files.service import FilesService
from shared.runtime import run

if __name__ == "__main__":
    run(FilesService)
