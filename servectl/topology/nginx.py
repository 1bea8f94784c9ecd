"""nginx configuration for a set of replicas, rendered from one template.

The same template serves ``servectl up`` (replicas on loopback ports) and docker-compose.yml
(replicas by service name), so the load-balancing rules are written once.
"""

from __future__ import annotations

from pathlib import Path
from string import Template

TEMPLATE = Path(__file__).with_name("nginx.conf.template")


def render(rest_backends: list[str], grpc_backends: list[str], rest_listen: str,
           grpc_listen: str, runtime_dir: str) -> str:
    """The nginx.conf text for these backends (``host:port`` each) and listen addresses."""
    def servers(backends: list[str]) -> str:
        return "\n".join(f"    server {b} max_fails=1 fail_timeout=2s;" for b in backends)
    return Template(TEMPLATE.read_text()).substitute(
        rest_servers=servers(rest_backends), grpc_servers=servers(grpc_backends),
        rest_listen=rest_listen, grpc_listen=grpc_listen,
        pid_file=f"{runtime_dir}/nginx.pid", error_log=f"{runtime_dir}/nginx-error.log",
        temp_dir=runtime_dir)
