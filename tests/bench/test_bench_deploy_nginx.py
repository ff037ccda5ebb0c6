"""DEPLOY.md's nginx block turned into a local config: only listen, TLS and the upstream change."""

import subprocess
from pathlib import Path

import pytest
from bench.deploy_nginx import deploy_block, local_block, local_config, nginx_binary

BLOCK = """\
upstream pyfiledrop {
    server 10.0.0.11:16273 max_fails=2 fail_timeout=5s;
    server 10.0.0.12:16273 max_fails=2 fail_timeout=5s;
    keepalive 64;
}

server {
    listen 443 ssl http2;
    ssl_certificate     /etc/ssl/x.pem;
    ssl_certificate_key /etc/ssl/x.key;
    proxy_request_buffering off;
    location / {
        proxy_pass http://pyfiledrop;
    }
}
"""


def test_deploy_block_is_the_documents_one_nginx_block() -> None:
    block = deploy_block()
    assert block.startswith("upstream pyfiledrop {")
    assert "proxy_request_buffering off;" in block
    assert deploy_block("text\n```nginx\nserver {}\n```\nmore") == "server {}\n"
    with pytest.raises(ValueError):
        deploy_block("no block here")


def test_local_block_swaps_listen_tls_and_upstream_only() -> None:
    local = local_block(BLOCK, 8081, 9091)
    assert local.splitlines() == [
        "upstream pyfiledrop {",
        "    server 127.0.0.1:9091 max_fails=2 fail_timeout=5s;",
        "    keepalive 64;",
        "}",
        "",
        "server {",
        "    listen 127.0.0.1:8081;",
        "    proxy_request_buffering off;",
        "    location / {",
        "        proxy_pass http://pyfiledrop;",
        "    }",
        "}",
    ]


def test_local_block_keeps_every_other_line_of_the_documented_block() -> None:
    block = deploy_block()
    local = local_block(block, 8081, 9091)
    swapped = ("server 10.", "listen ", "ssl_")
    kept = [line for line in block.splitlines() if not line.strip().startswith(swapped)]
    rest = [
        line
        for line in local.splitlines()
        if "127.0.0.1:9091" not in line and "127.0.0.1:8081" not in line
    ]
    assert rest == kept
    assert local.count("server 127.0.0.1:9091") == 1
    assert local.count("listen 127.0.0.1:8081;") == 1
    assert "10.0.0." not in local and "ssl" not in local


def test_local_block_refuses_a_block_without_upstream_addresses() -> None:
    with pytest.raises(ValueError, match="upstream"):
        local_block("server {\n    listen 80;\n}\n", 8081, 9091)


def test_local_config_keeps_nginx_files_under_the_prefix(tmp_path: Path) -> None:
    config = local_config(BLOCK, tmp_path, 8081, 9091, workers="auto", root=False)
    assert config.startswith("worker_processes auto;\n")
    assert f"pid {tmp_path}/nginx.pid;" in config
    assert f"error_log {tmp_path}/error.log warn;" in config
    for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        assert f"    {kind}_temp_path {tmp_path}/{kind};" in config
    assert local_block(BLOCK, 8081, 9091) in config
    as_root = local_config(BLOCK, tmp_path, 8081, 9091, error_log="stderr", root=True)
    assert as_root.startswith("user root;\nworker_processes 1;\n")
    assert "error_log stderr warn;" in as_root


def test_nginx_accepts_the_local_config(tmp_path: Path) -> None:
    binary = nginx_binary()
    if binary is None:
        pytest.skip("nginx missing: run `make proxy-deps`")
    config = tmp_path / "nginx.conf"
    config.write_text(local_config(deploy_block(), tmp_path, 8081, 9091))
    checked = subprocess.run(
        [binary, "-t", "-p", str(tmp_path), "-c", str(config), "-e", str(tmp_path / "e.log")],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert checked.returncode == 0, checked.stderr
