"""`python -m bench --proxy`: the settings it runs and how it puts nginx in front (no timing)."""

from pathlib import Path

from bench.__main__ import parse_args, uses_uploader
from bench.systems import (
    BEHIND_NGINX,
    PYFILEDROP_NO_FSYNC,
    PYFILEDROP_VIA_NGINX,
    VIA_NGINX,
    Server,
    Setting,
    Trial,
    curl_put,
    missing_tools,
    proxy_settings,
)


def test_each_client_runs_direct_and_through_nginx_side_by_side() -> None:
    settings = proxy_settings()
    assert [s.key for s in settings] == [
        "pyfiledrop PUT (no flush) | curl -T",
        "pyfiledrop via nginx (no flush) | curl -T",
        "pyfiledrop Dropzone (no flush) | CLI defaults",
        "pyfiledrop via nginx (no flush) | CLI defaults",
        "pyfiledrop Dropzone (no flush) | page default (auto) x4",
        "pyfiledrop via nginx (no flush) | page default (auto) x4",
    ]
    trial = Trial(Path("/data/f.bin"), Path("/w"), 8081, 9091)
    for direct, proxied in zip(settings[::2], settings[1::2], strict=True):
        assert direct.server is PYFILEDROP_NO_FSYNC and proxied.server is PYFILEDROP_VIA_NGINX
        assert not direct.flush and not proxied.flush
        assert direct.client(trial) == proxied.client(trial)  # the same client, same URL
    assert [uses_uploader(s) for s in settings] == [False, False, True, True, True, True]
    page = settings[4].client(trial)
    assert page[page.index("--chunk-size") + 1] == str(2**20)  # auto, for a file not made yet
    assert page[page.index("--parallel") + 1] == "4"


def test_the_proxied_server_puts_pyfiledrop_on_the_upstream_port(tmp_path: Path) -> None:
    trial = Trial(tmp_path / "f.bin", tmp_path, 8081, 9091)
    command = PYFILEDROP_VIA_NGINX.command(trial)
    assert command[1:4] == [str(BEHIND_NGINX), "9091", "/healthz"]
    split = command.index("--")
    nginx, server = command[4:split], command[split + 1 :]
    assert nginx[1:] == ["-p", f"{tmp_path}/nginx", "-c", f"{tmp_path}/nginx/nginx.conf",
                         "-e", "stderr"]  # fmt: skip
    assert server == PYFILEDROP_NO_FSYNC.command(Trial(trial.source, tmp_path, 9091))
    PYFILEDROP_VIA_NGINX.prepare(trial)
    config = (tmp_path / "nginx" / "nginx.conf").read_text()
    assert "listen 127.0.0.1:8081;" in config
    assert "server 127.0.0.1:9091 max_fails=2 fail_timeout=5s;" in config
    assert "proxy_request_buffering off;" in config
    assert "worker_processes auto;" in config


def test_a_missing_nginx_skips_the_proxied_system() -> None:
    lacking = Server("x", PYFILEDROP_NO_FSYNC.command, needs=("/nonexistent/nginx",))
    setting = Setting(VIA_NGINX, "curl -T", False, lacking, curl_put("/put/"))
    assert missing_tools([setting]) == {VIA_NGINX: "/nonexistent/nginx not found"}


def test_proxy_is_a_mode_of_its_own() -> None:
    assert parse_args(["--proxy"]).proxy
    assert not parse_args([]).proxy


def test_the_page_default_follows_the_pages_auto_chunk_size(tmp_path: Path) -> None:
    from bench.systems import PAGE_DEFAULT, Trial, dropzone, page_chunk_size

    from pyfiledrop.units import auto_chunk_size

    sizes = (1, 128 * 2**20, 2**30, 2 * 2**30, 2**40)
    assert [page_chunk_size(size) for size in sizes] == [
        2**20,
        2**20,
        8 * 2**20,
        16 * 2**20,
        64 * 2**20,
    ]
    assert [page_chunk_size(size) for size in sizes] == [auto_chunk_size(s) for s in sizes]
    source = tmp_path / "one.bin"
    with source.open("wb") as handle:
        handle.truncate(2**30)
    command = dropzone(page_chunk_size, 4)(Trial(source, tmp_path, 1))
    assert command[command.index("--chunk-size") + 1] == str(8 * 2**20)
    assert "(auto)" in PAGE_DEFAULT
