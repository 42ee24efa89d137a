"""A throwaway OpenLDAP directory (Debian's ``slapd``) on loopback, for tests and local trials.

    with Directory.start(folder, users=[DirectoryUser("ana", "pw", groups=("analysts",))]) as d:
        d.url  # ldap://127.0.0.1:<free port>

The directory holds ``ou=people`` (``inetOrgPerson`` entries with salted SHA passwords) and
``ou=groups`` (``groupOfNames`` listing their members' DNs) under ``dc=cardlake,dc=test``. It is
loaded offline with ``slapadd`` before ``slapd`` starts in the foreground of its own process
group; :meth:`Directory.stop` ends that group.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

SUFFIX = "dc=cardlake,dc=test"
PEOPLE = f"ou=people,{SUFFIX}"
GROUPS = f"ou=groups,{SUFFIX}"
SCHEMA_DIR = Path("/etc/ldap/schema")
MODULE_DIR = Path("/usr/lib/ldap")
START_TIMEOUT_S = 30.0


class DirectoryError(RuntimeError):
    """slapd is missing or did not start; the message says which and where its log is."""


@dataclass(frozen=True)
class DirectoryUser:
    uid: str
    password: str
    groups: tuple[str, ...] = ()


def ssha(password: str) -> str:
    """``{SSHA}`` hash of a password, as ``slappasswd`` writes it."""
    salt = secrets.token_bytes(8)
    digest = hashlib.sha1(password.encode() + salt).digest()
    return "{SSHA}" + base64.b64encode(digest + salt).decode()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _slapd() -> str:
    found = shutil.which("slapd") or "/usr/sbin/slapd"
    if not os.path.exists(found):
        raise DirectoryError(
            "slapd not found: apt-get install slapd ldap-utils (.ci/setup.d/20-slapd.sh does it)"
        )
    return found


def _config(folder: Path) -> str:
    schemas = "\n".join(
        f"include {SCHEMA_DIR / s}.schema" for s in ("core", "cosine", "inetorgperson", "nis")
    )
    return f"""{schemas}
pidfile {folder / "slapd.pid"}
argsfile {folder / "slapd.args"}
modulepath {MODULE_DIR}
moduleload back_mdb
database mdb
maxsize 10485760
suffix "{SUFFIX}"
directory {folder / "data"}
access to attrs=userPassword by anonymous auth by self read by * none
access to * by * read
"""


def _ldif(users: Sequence[DirectoryUser]) -> str:
    entries = [
        f"dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\n"
        "o: cardlake\ndc: cardlake",
        f"dn: {PEOPLE}\nobjectClass: organizationalUnit\nou: people",
        f"dn: {GROUPS}\nobjectClass: organizationalUnit\nou: groups",
    ]
    for user in users:
        entries.append(
            f"dn: uid={user.uid},{PEOPLE}\nobjectClass: inetOrgPerson\nuid: {user.uid}\n"
            f"cn: {user.uid}\nsn: {user.uid}\nuserPassword: {ssha(user.password)}"
        )
    for group in sorted({g for user in users for g in user.groups}):
        members = "\n".join(f"member: uid={u.uid},{PEOPLE}" for u in users if group in u.groups)
        entries.append(
            f"dn: cn={group},{GROUPS}\nobjectClass: groupOfNames\ncn: {group}\n{members}"
        )
    return "\n\n".join(entries) + "\n"


@dataclass
class Directory:
    folder: Path
    port: int
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"ldap://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.folder / "slapd.log"

    @classmethod
    @contextmanager
    def start(
        cls, folder: Path, *, users: Sequence[DirectoryUser], port: int | None = None
    ) -> Iterator[Directory]:
        """Loads ``users`` into a new directory under ``folder`` and serves it on loopback."""
        directory = cls.launch(folder, users=users, port=port)
        try:
            yield directory
        finally:
            directory.stop()

    @classmethod
    def launch(
        cls, folder: Path, *, users: Sequence[DirectoryUser], port: int | None = None
    ) -> Directory:
        slapd = _slapd()
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "data").mkdir(exist_ok=True)
        conf = folder / "slapd.conf"
        conf.write_text(_config(folder))
        (folder / "people.ldif").write_text(_ldif(users))
        subprocess.run(
            [
                shutil.which("slapadd") or "/usr/sbin/slapadd",
                "-f",
                str(conf),
                "-l",
                str(folder / "people.ldif"),
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )
        port = port or free_port()
        log = (folder / "slapd.log").open("wb")
        process = subprocess.Popen(
            [slapd, "-f", str(conf), "-h", f"ldap://127.0.0.1:{port}/", "-d", "0"],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        directory = cls(folder=folder, port=port, process=process)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise DirectoryError(
                    f"slapd exited with {process.returncode}; log: {directory.log}"
                )
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.settimeout(1)
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    return directory
            time.sleep(0.2)
        directory.stop()
        raise DirectoryError(
            f"slapd not listening on 127.0.0.1:{port} in {START_TIMEOUT_S}s; log: {directory.log}"
        )

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
