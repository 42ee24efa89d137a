"""`make sql-directory`: a real slapd on loopback whose printed users can log in, by role group.

The job is run as a user runs it (its own process, stopped with SIGTERM); logins are checked
with OpenLDAP's own ``ldapwhoami`` and group membership with ``ldapsearch``, as HiveServer2's
LDAP provider binds and searches.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from cardlake.config import PROJECT_ROOT
from cardlake.governance.directory import GROUPS, PEOPLE, free_port

pytestmark = pytest.mark.integration

JOB = PROJECT_ROOT / "jobs" / "sql_directory.py"
USER_LINE = re.compile(r"user (\S+)\s+password (\S+)\s+group (\S+)")

needs_ldap = pytest.mark.skipif(
    not (Path("/usr/sbin/slapd").exists() and shutil.which("ldapwhoami")),
    reason="Debian's slapd and ldap-utils are missing (.ci/setup.d/20-slapd.sh installs them)",
)


def _bind(url: str, uid: str, password: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ldapwhoami", "-x", "-H", url, "-D", f"uid={uid},{PEOPLE}", "-w", password],
        capture_output=True,
        text=True,
        timeout=30,
    )


def _start(*extra: str) -> tuple[subprocess.Popen[str], str, list[str]]:
    process = subprocess.Popen(
        [sys.executable, str(JOB), "--env", "test", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    lines: list[str] = []
    for line in process.stdout:
        lines.append(line.rstrip())
        if "Ctrl-C stops it" in line:
            break
    ready = [line for line in lines if "listening on" in line]
    assert ready, "\n".join(lines)
    return process, ready[0].rsplit(" ", 1)[1], lines


@pytest.fixture(scope="module")
def directory() -> Iterator[tuple[str, dict[str, tuple[str, str]]]]:
    process, url, lines = _start("--port", str(free_port()))
    try:
        users = {
            m.group(1): (m.group(2), m.group(3)) for line in lines if (m := USER_LINE.search(line))
        }
        yield url, users
    finally:
        process.send_signal(signal.SIGTERM)
        rest, _ = process.communicate(timeout=30)
        assert process.returncode == 0, rest
        assert "stopped" in rest


@needs_ldap
def test_one_trial_user_per_role_logs_in_with_the_printed_password(directory):
    url, users = directory
    assert {uid: group for uid, (_, group) in users.items()} == {
        "analyst": "cardlake-analysts",
        "privileged": "cardlake-privileged",
    }
    for uid, (password, _) in users.items():
        answer = _bind(url, uid, password)
        assert answer.returncode == 0, answer.stderr
        assert f"uid={uid}," in answer.stdout


@needs_ldap
def test_a_wrong_password_is_refused(directory):
    url, users = directory
    password, _ = users["analyst"]
    answer = _bind(url, "analyst", password + "x")
    assert answer.returncode == 49, (answer.returncode, answer.stdout, answer.stderr)
    assert "Invalid credentials" in answer.stderr


@needs_ldap
def test_each_user_is_a_member_of_its_role_group(directory):
    url, users = directory
    password, _ = users["privileged"]
    answer = subprocess.run(
        [
            "ldapsearch",
            "-x",
            "-LLL",
            "-H",
            url,
            "-D",
            f"uid=privileged,{PEOPLE}",
            "-w",
            password,
            "-b",
            GROUPS,
            f"(member=uid=privileged,{PEOPLE})",
            "cn",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert answer.returncode == 0, answer.stderr
    assert re.findall(r"^cn: (\S+)$", answer.stdout, re.M) == ["cardlake-privileged"]


@needs_ldap
def test_passwords_are_fresh_on_every_start():
    port = free_port()
    first, url, lines = _start("--port", str(port))
    try:
        before = {m.group(1): m.group(2) for line in lines if (m := USER_LINE.search(line))}
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=30)
    second, _, lines = _start("--port", str(port))
    try:
        after = {m.group(1): m.group(2) for line in lines if (m := USER_LINE.search(line))}
        assert set(before) == set(after) == {"analyst", "privileged"}
        assert all(before[uid] != after[uid] for uid in before)
        assert _bind(url, "analyst", before["analyst"]).returncode == 49
    finally:
        second.send_signal(signal.SIGTERM)
        second.communicate(timeout=30)


@needs_ldap
def test_a_users_file_replaces_the_trial_users(tmp_path):
    users = tmp_path / "users.yaml"
    users.write_text("- {uid: ana, password: ana-pw-1, groups: [cardlake-analysts]}\n")
    process, url, lines = _start("--port", str(free_port()), "--users", str(users))
    try:
        assert not [line for line in lines if USER_LINE.search(line)]
        assert "ana-pw-1" not in "\n".join(lines)
        assert _bind(url, "ana", "ana-pw-1").returncode == 0
        assert _bind(url, "analyst", "anything").returncode == 49
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=30)
