"""HTTPS with --ssl-certfile/--ssl-keyfile, checked certificates, and the warning for a
server reachable from other machines without protection."""

from __future__ import annotations

import logging
import ssl
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import trio
import trio_websocket
import trustme
from support import build_project

from slowdash_trio._cli import _warn_exposure
from slowdash_trio._server import Server


@pytest.fixture
def ca() -> trustme.CA:
    return trustme.CA()


def pem_files(ca: trustme.CA, directory: Path) -> tuple[str, str]:
    cert = ca.issue_cert("127.0.0.1", "localhost")
    certfile, keyfile = directory / "cert.pem", directory / "key.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(certfile))
    cert.private_key_pem.write_to_path(str(keyfile))
    return str(certfile), str(keyfile)


async def test_https_and_wss(tmp_path: Path, ca: trustme.CA) -> None:
    tls = pem_files(ca, tmp_path)
    server = Server(build_project(tmp_path))
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    async with trio.open_nursery() as nursery:
        urls = await nursery.start(
            lambda task_status: server.serve(
                host="127.0.0.1", port=0, tls=tls, task_status=task_status
            )
        )
        url = urls[0]
        assert url.startswith("https://")
        with trio.fail_after(30):
            async with httpx.AsyncClient(base_url=url, verify=client_context) as client:
                reply = await client.get("/api/ping")
                assert (reply.status_code, reply.json()) == (200, ["pong"])
            # a client that does not trust the certificate is refused by its own TLS check
            async with httpx.AsyncClient(base_url=url) as untrusting:
                with pytest.raises(httpx.ConnectError) as refused:
                    await untrusting.get("/api/ping")
                assert any(
                    isinstance(e, ssl.SSLCertVerificationError) for e in chain(refused.value)
                )
            wss = url.replace("https://", "wss://") + "/ws/attach/current_data"
            async with trio_websocket.open_websocket_url(wss, ssl_context=client_context) as ws:
                await ws.send_message('{"x": {"t": 1, "x": 2}}')
                assert '"x"' in await ws.get_message()
        server.request_shutdown()


def chain(exc: BaseException | None) -> list[BaseException]:
    found = []
    while exc is not None:
        found.append(exc)
        exc = exc.__cause__ or exc.__context__
    return found


def serve(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "slowdash_trio", "serve", "--project-dir", str(cwd), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_bad_tls_files_stop_the_start(tmp_path: Path, ca: trustme.CA) -> None:
    certfile, _ = pem_files(ca, tmp_path)
    (tmp_path / "SlowdashProject.yaml").write_text("slowdash_project:\n  name: t\n")
    done = serve("--ssl-certfile", certfile, cwd=tmp_path)
    assert done.returncode == 2 and "go together" in done.stderr
    done = serve("--ssl-certfile", certfile, "--ssl-keyfile", "missing.pem", cwd=tmp_path)
    assert done.returncode == 2 and "missing.pem" in done.stderr
    other_key = tmp_path / "other.pem"
    trustme.CA().issue_cert("127.0.0.1").private_key_pem.write_to_path(str(other_key))
    done = serve("--ssl-certfile", certfile, "--ssl-keyfile", str(other_key), cwd=tmp_path)
    assert done.returncode == 2 and "KEY_VALUES_MISMATCH" in done.stderr.upper()


@pytest.mark.parametrize(
    ("host", "authenticated", "tls", "warning"),
    [
        ("127.0.0.1", False, False, None),
        ("localhost", False, False, None),
        ("::1", False, False, None),
        ("0.0.0.0", False, False, "WITHOUT AUTHENTICATION"),
        ("192.168.1.20", False, True, "WITHOUT AUTHENTICATION"),
        ("lab-pc.example.org", False, False, "WITHOUT AUTHENTICATION"),
        ("0.0.0.0", True, False, "without TLS"),
        ("::", True, True, None),
    ],
)
def test_exposure_warning(
    host: str,
    authenticated: bool,
    tls: bool,
    warning: str | None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="slowdash_trio"):
        _warn_exposure(host, authenticated=authenticated, tls=tls)
    if warning is None:
        assert caplog.records == []
    else:
        (record,) = caplog.records
        assert warning in record.getMessage() and host in record.getMessage()
