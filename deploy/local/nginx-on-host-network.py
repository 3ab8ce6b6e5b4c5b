"""Start nginx on deploy/proxy/nginx.conf (mounted at /etc/nginx/nginx.conf by docker-compose.yml)
with what is about Docker's network changed for the host's: listen on 127.0.0.1:PARLEY_LOCAL_HTTP_PORT,
the gateway at 127.0.0.1:PARLEY_LOCAL_GATEWAY_PORT instead of Docker's DNS name, Debian's nginx
user. Everything else (WebSocket upgrade, streamed files, timeouts, limits) is the production file's.
The image's command (deploy/local/nginx-standin.Dockerfile)."""
import os
import subprocess
from pathlib import Path

PRODUCTION, HERE = "/etc/nginx/nginx.conf", "/tmp/nginx.conf"
http_port, gateway_port = os.environ["PARLEY_LOCAL_HTTP_PORT"], os.environ["PARLEY_LOCAL_GATEWAY_PORT"]
conf = Path(PRODUCTION).read_text()
for old, new in (
    ("user nginx;", "user www-data;"),
    ("listen 8000;", f"listen 127.0.0.1:{http_port};"),
    ("set $gateway http://gateway:8000;", f"set $gateway http://127.0.0.1:{gateway_port};"),
):
    if conf.count(old) != 1:
        raise SystemExit(f"{PRODUCTION} no longer has one {old!r}: update {__file__}")
    conf = conf.replace(old, new)
Path(HERE).write_text(conf)
subprocess.run(["nginx", "-t", "-q", "-c", HERE], check=True)
os.execvp("nginx", ["nginx", "-c", HERE, "-g", "daemon off;"])
