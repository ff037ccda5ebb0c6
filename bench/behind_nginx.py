"""Start a server, wait until it answers, then become nginx in front of it.

    python bench/behind_nginx.py UPSTREAM_PORT HEALTH_PATH NGINX_ARGV... -- SERVER_ARGV...

bench/systems.py starts this in a process group of its own: the server stays this process's
child, nginx replaces it (exec, same pid), so stopping the group stops both, and the group's
CPU and memory are nginx's and the server's together. nginx starts only once the server answers
HEALTH_PATH with 200: before that it would answer the harness's readiness probe with a 502.
Standalone (no bench imports): it runs with the trial's folder as its working directory.
"""

import http.client
import os
import subprocess
import sys
import time

READY_TIMEOUT = 60.0


def answers(port: int, path: str) -> bool:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        connection.request("GET", path)
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


def main(argv: list[str]) -> int:
    if len(argv) < 5 or "--" not in argv[2:]:
        print(__doc__, file=sys.stderr)
        return 2
    port, path = int(argv[0]), argv[1]
    split = argv.index("--", 2)
    nginx, server = argv[2:split], argv[split + 1 :]
    child = subprocess.Popen(server, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + READY_TIMEOUT
    while not answers(port, path):
        if child.poll() is not None:
            print(f"behind_nginx: server exited with code {child.returncode}", file=sys.stderr)
            return 1
        if time.monotonic() > deadline:
            print(f"behind_nginx: server not ready on port {port}", file=sys.stderr)
            child.terminate()
            return 1
        time.sleep(0.05)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execvp(nginx[0], nginx)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
