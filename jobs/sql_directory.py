"""A local OpenLDAP directory for trying `make sql-server` on a laptop (Debian's ``slapd``).

    python jobs/sql_directory.py                      # ldap://127.0.0.1:3890, two trial users
    python jobs/sql_directory.py --users users.yaml   # your own users and groups

`make sql-server` logs every SQL user in against a directory (conf/governance.yaml
``sql_server.ldap``). A bank points that at its own; this job serves a throwaway one on loopback
so the server can be tried without one. Without ``--users`` it creates one user per role in
``sql_server.roles`` (``analyst`` in the analysts' group, ``privileged`` in the privileged
group), each with a fresh random password printed once on the console, never written to the
lake or a log. A users file is YAML::

    - {uid: ana, password: "...", groups: [cardlake-analysts]}

The directory lives in a temporary folder and is gone when the job stops (Ctrl-C or SIGTERM).
"""

from __future__ import annotations

import argparse
import secrets
import signal
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from cardlake.governance.directory import Directory, DirectoryError, DirectoryUser
from cardlake.governance.settings import load_governance

READY = "cardlake sql-directory: listening on"
DEFAULT_PORT = 3890


def _users(path: Path | None, roles: dict[str, str]) -> list[DirectoryUser]:
    if path is None:
        return [
            DirectoryUser(role, secrets.token_urlsafe(12), (group,))
            for role, group in roles.items()
        ]
    entries = yaml.safe_load(path.read_text()) or []
    users = []
    for index, entry in enumerate(entries, start=1):
        missing = [key for key in ("uid", "password") if not (entry or {}).get(key)]
        if missing:
            raise SystemExit(f"{path}: user {index} lacks {', '.join(missing)}")
        users.append(
            DirectoryUser(
                str(entry["uid"]), str(entry["password"]), tuple(entry.get("groups") or ())
            )
        )
    return users


def _port(url: str) -> int:
    parts = urlsplit(url)
    if parts.hostname in ("127.0.0.1", "localhost") and parts.port:
        return parts.port
    return DEFAULT_PORT


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="local", help="configuration (default: local)")
    parser.add_argument(
        "--port", type=int, help="port (default: that of conf/governance.yaml sql_server.ldap.url)"
    )
    parser.add_argument("--users", type=Path, help="YAML list of {uid, password, groups}")
    args = parser.parse_args(argv)

    access = load_governance(args.env).sql_server
    users = _users(args.users, dict(access.roles))
    port = args.port or _port(access.ldap.url)
    stop = threading.Event()

    def _stop(_signum: int, _frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    with tempfile.TemporaryDirectory(prefix="cardlake-ldap-") as folder:
        try:
            directory = Directory.launch(Path(folder), users=users, port=port)
        except DirectoryError as exc:
            print(f"cardlake sql-directory: {exc}", file=sys.stderr)
            return 1
        try:
            print(f"{READY} {directory.url}", flush=True)
            if args.users is None:
                for user in users:
                    print(
                        f"  user {user.uid:<12} password {user.password:<18} "
                        f"group {', '.join(user.groups)}",
                        flush=True,
                    )
            if directory.url != access.ldap.url:
                print(
                    f"  start the server with: make sql-server LDAP_URL={directory.url}", flush=True
                )
            print("  Ctrl-C stops it", flush=True)
            while not stop.wait(0.5):
                if directory.process.poll() is not None:
                    print(
                        f"cardlake sql-directory: slapd exited; log: {directory.log}",
                        file=sys.stderr,
                    )
                    return 1
        finally:
            directory.stop()
    print("cardlake sql-directory: stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
