"""A throwaway PostgreSQL server for the sweep tests: Debian's `postgresql` binaries, a data directory in /tmp,
run as an unprivileged user (PostgreSQL refuses root), listening on 127.0.0.1 only with a random password.

One home for the steps: `.ci/run` calls this file (`start DIR` prints the database URL, `stop DIR` stops the
server and removes DIR) and the test fixture imports it when $TRAINCTL_TEST_POSTGRES names no server.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

USER = "trainctl"  # the server's superuser
DATABASE = "trainctl_test"
TOOLS = ("initdb", "pg_ctl", "createdb")
UNPRIVILEGED = ("postgres", "nobody")  # who runs the server when we are root (Debian's package makes `postgres`)


class NoServer(RuntimeError):
    """No PostgreSQL can be started here; the message says why."""


def bindir() -> Path:
    """Where initdb and pg_ctl are: on PATH, or Debian's /usr/lib/postgresql/<version>/bin (newest first)."""
    found = shutil.which("initdb")
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parts[-2]), reverse=True)
    for folder in [*([Path(found).resolve().parent] if found else []), *map(Path, versions)]:
        if all((folder / name).is_file() for name in TOOLS):
            return folder
    raise NoServer(f"PostgreSQL's server commands ({', '.join(TOOLS)}) are not installed (Debian: apt-get "
                   "install postgresql)")


def _runner() -> tuple[list[str], int | None, int | None]:
    """(command prefix, uid, gid): the unprivileged user that runs the server's commands."""
    if os.geteuid() != 0:
        return [], None, None
    for name in UNPRIVILEGED:
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        return ["runuser", "-u", name, "--"], entry.pw_uid, entry.pw_gid
    raise NoServer(f"running as root and none of the users {UNPRIVILEGED} exists to run PostgreSQL")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(command: list[str], env: dict[str, str] | None = None) -> None:
    try:
        proc = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    except OSError as e:
        raise NoServer(f"{command[0]}: {e}") from None
    if proc.returncode != 0:
        raise NoServer(f"{' '.join(command)} failed ({proc.returncode}): {(proc.stdout + proc.stderr)[-2000:]}")


def start(root: Path | None = None) -> tuple[str, Path]:
    """Start a server in `root` (a new folder in /tmp by default: pytest's own tmp folders are closed to other
    users); return its database URL and the folder to give `stop`."""
    bin_, (prefix, uid, gid) = bindir(), _runner()
    root = Path(root) if root else Path(tempfile.mkdtemp(prefix="trainctl-pg-"))
    root.mkdir(parents=True, exist_ok=True)
    password, port = secrets.token_hex(16), _free_port()
    (root / "pwfile").write_text(password + "\n")
    (root / "pwfile").chmod(0o600)
    if uid is not None:
        for path in (root, root / "pwfile"):
            os.chown(path, uid, gid)
    data = root / "data"
    _run([*prefix, str(bin_ / "initdb"), "-D", str(data), "-U", USER, "--auth=scram-sha-256",
          f"--pwfile={root / 'pwfile'}", "--no-sync", "--encoding=UTF8", "--locale=C"])
    # loopback TCP only, no unix socket (its default folder may not exist or be writable); fsync off: throwaway
    options = f"-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories='' -c fsync=off"
    _run([*prefix, str(bin_ / "pg_ctl"), "-D", str(data), "-l", str(root / "server.log"), "-o", options, "-w",
          "-t", "60", "start"])
    (root / "port").write_text(str(port))
    env = {**os.environ, "PGPASSWORD": password}
    _run([str(bin_ / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", USER, DATABASE], env=env)
    return f"postgresql://{USER}:{password}@127.0.0.1:{port}/{DATABASE}", root


def stop(root: Path) -> None:
    """Stop the server started in `root` (at once: its data is thrown away) and remove `root`."""
    root = Path(root)
    if (root / "data" / "postmaster.pid").exists():
        prefix, _, _ = _runner()
        subprocess.run([*prefix, str(bindir() / "pg_ctl"), "-D", str(root / "data"), "-m", "immediate", "-w",
                        "stop"], capture_output=True, timeout=120)
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":  # python tests/postgres_server.py start DIR | stop DIR
    action, folder = sys.argv[1], Path(sys.argv[2])
    if action == "start":
        try:
            url, _ = start(folder)
        except NoServer as e:
            stop(folder)
            sys.exit(f"cannot start PostgreSQL: {e}")
        print(url)
    else:
        stop(folder)
