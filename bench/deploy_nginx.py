"""docs/DEPLOY.md's nginx block, read from the document itself (so it cannot drift), and turned
into a local nginx.conf: loopback, no TLS, one upstream node on a local port.

Shared by the benchmark (`python -m bench --proxy`) and tests/web/test_nginx.py.
"""

import os
import re
import shutil
from pathlib import Path

DEPLOY = Path(__file__).resolve().parent.parent / "docs" / "DEPLOY.md"
TEMP_KINDS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")


def deploy_block(text: str | None = None) -> str:
    """DEPLOY.md's nginx block (one, shared by its one-node and several-node recipes)."""
    found = re.search(r"```nginx\n(.*?)```", DEPLOY.read_text() if text is None else text, re.S)
    if found is None:
        raise ValueError("DEPLOY.md has no nginx block")
    return found.group(1)


def local_block(block: str, listen_port: int, upstream_port: int) -> str:
    """The same directives, but listening on loopback without TLS, in front of one local node."""
    lines = []
    upstream_done = False
    for line in block.splitlines():
        stripped = line.strip()
        if re.match(r"server \d+\.\d+\.\d+\.\d+:\d+", stripped):
            if not upstream_done:
                lines.append(f"    server 127.0.0.1:{upstream_port} max_fails=2 fail_timeout=5s;")
                upstream_done = True
            continue
        if stripped.startswith("listen "):
            lines.append(f"    listen 127.0.0.1:{listen_port};")
            continue
        if stripped.startswith("ssl_"):
            continue
        lines.append(line)
    if not upstream_done:
        raise ValueError("the upstream block changed shape; update bench/deploy_nginx.py")
    return "\n".join(lines)


def local_config(
    block: str,
    prefix: Path,
    listen_port: int,
    upstream_port: int,
    workers: str = "1",
    error_log: str | None = None,
    root: bool | None = None,
) -> str:
    """A whole nginx.conf around local_block, with nothing added to the block's own directives:
    only where nginx keeps its files (all under prefix) and how many workers it runs.

    As root, the workers stay root (else they run as nobody, who can't use prefix's temp dirs).
    """
    as_root = os.geteuid() == 0 if root is None else root
    user = "user root;\n" if as_root else ""
    temp = "\n".join(f"    {kind}_temp_path {prefix}/{kind};" for kind in TEMP_KINDS)
    site = local_block(block, listen_port, upstream_port)
    return (
        f"{user}worker_processes {workers};\npid {prefix}/nginx.pid;\ndaemon off;\n"
        f"error_log {error_log or f'{prefix}/error.log'} warn;\n"
        "events { worker_connections 1024; }\n"
        f"http {{\n    access_log off;\n{temp}\n{site}\n}}\n"
    )


def nginx_binary() -> str | None:
    """nginx on PATH, or Debian's, which is not on a non-root PATH."""
    found = shutil.which("nginx")
    if found is None and Path("/usr/sbin/nginx").exists():
        found = "/usr/sbin/nginx"
    return found
