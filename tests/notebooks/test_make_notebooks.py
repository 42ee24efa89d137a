"""`make notebooks`: Jupyter on loopback, with the project's environment as its kernel."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import secrets
import signal
import socket
import subprocess
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from cardlake.config import PROJECT_ROOT

START_DEADLINE_S = 300  # the first call installs the notebooks extra (jupyterlab)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _execute(base: str, token: str, code: str) -> str:
    """Starts a kernel through the server's REST API and runs ``code`` over its websocket."""
    from tornado.websocket import websocket_connect

    request = urllib.request.Request(f"{base}/api/kernels?token={token}", data=b"{}", method="POST")
    with urllib.request.urlopen(request, timeout=30) as response:
        kernel = json.loads(response.read())["id"]
    ws = await websocket_connect(
        f"{base.replace('http', 'ws')}/api/kernels/{kernel}/channels?token={token}"
    )
    msg_id = uuid.uuid4().hex
    await ws.write_message(
        json.dumps(
            {
                "header": {
                    "msg_id": msg_id,
                    "msg_type": "execute_request",
                    "username": "test",
                    "session": uuid.uuid4().hex,
                    "version": "5.3",
                },
                "parent_header": {},
                "metadata": {},
                "channel": "shell",
                "content": {
                    "code": code,
                    "silent": False,
                    "store_history": False,
                    "user_expressions": {},
                    "allow_stdin": False,
                },
            }
        )
    )
    out: list[str] = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        message = await ws.read_message()
        assert message is not None, "the kernel's websocket closed"
        reply = json.loads(message)
        if reply.get("parent_header", {}).get("msg_id") != msg_id:
            continue
        kind = reply["header"]["msg_type"]
        if kind == "stream":
            out.append(reply["content"]["text"])
        elif kind == "error":
            raise AssertionError("\n".join(reply["content"]["traceback"]))
        elif kind == "status" and reply["content"]["execution_state"] == "idle":
            ws.close()
            return "".join(out)
    raise AssertionError("the kernel did not answer within 120 s")


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


@pytest.mark.slow
@pytest.mark.integration
def test_make_notebooks_serves_on_loopback_with_a_kernel_that_imports_cardlake(
    tmp_path: Path,
) -> None:
    port, token = _free_port(), secrets.token_hex(16)
    log = tmp_path / "jupyter.log"
    env = {**os.environ, "JUPYTER_TOKEN": token, "JUPYTER_RUNTIME_DIR": str(tmp_path / "rt")}
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            ["make", "-s", "notebooks", f"NOTEBOOK_PORT={port}"],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_DEADLINE_S
        while True:
            assert proc.poll() is None, f"make notebooks exited: {log.read_text()[-2000:]}"
            try:
                _get(f"{base}/api/status?token={token}")
                break
            except OSError:
                assert time.monotonic() < deadline, f"no Jupyter on {base}: {log.read_text()}"
                time.sleep(1)
        # Bound to loopback only: nothing answers on the machine's other addresses.
        listening = [
            line
            for line in Path("/proc/net/tcp").read_text().splitlines()[1:]
            if line.split()[1].endswith(f":{port:04X}") and line.split()[3] == "0A"
        ]
        assert listening and all(line.split()[1].startswith("0100007F:") for line in listening)
        with pytest.raises(urllib.error.HTTPError) as refused:  # the token is required
            _get(f"{base}/api/kernelspecs")
        assert refused.value.code == 403
        # A kernel started by the server imports cardlake from this checkout.
        # In a thread of its own: a browser test earlier on this worker (Playwright's sync API)
        # can leave an event loop running in this one, where asyncio.run refuses to start.
        code = "import cardlake; print(cardlake.__file__)"
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
            printed = pool.submit(asyncio.run, _execute(base, token, code)).result()
        assert Path(printed.strip()).resolve().is_relative_to(PROJECT_ROOT / "lib"), printed
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
