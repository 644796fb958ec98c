"""The network under a clinic-server connection drops: the connection is given up in seconds,
not left waiting on an answer that never comes."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.server_support import binaries_missing

ROOT = Path(__file__).resolve().parent.parent

# In a network namespace of its own (loopback only), a cluster is started, a statement sent,
# and the loopback taken down while it runs: its answer never arrives, as when a station's
# Wi-Fi or the clinic's switch goes away mid-sync. Nothing else on the machine sees it.
_DROP = textwrap.dedent(
    """
    import subprocess, threading, time
    from tests.server_support import remove_cluster, start_cluster
    from therapy_timer.server import connect
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    cluster = start_cluster()
    said = []
    def ask(conn):
        began = time.monotonic()
        try:
            conn.execute("SELECT pg_sleep(2)").fetchall()
            said.append("answered")
        except Exception as exc:
            said.append(f"{type(exc).__name__} {round(time.monotonic() - began)}")
    try:
        asking = threading.Thread(target=ask, args=[connect(cluster.dsn())], daemon=True)
        asking.start()
        time.sleep(0.5)
        subprocess.run(["ip", "link", "set", "lo", "down"], check=True)
        asking.join(75)
        print(said[0] if said else "waiting 75")
    finally:
        subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
        remove_cluster(cluster)
    """
)


def _no_namespace() -> str | None:
    if binaries_missing():
        return binaries_missing()
    if os.geteuid() != 0 or not (shutil.which("unshare") and shutil.which("ip")):
        return "needs root, unshare and ip to drop a network of its own"
    tried = subprocess.run(["unshare", "-n", "ip", "link", "set", "lo", "up"], check=False)
    return None if tried.returncode == 0 else "no network namespace may be made here"


def test_a_network_that_drops_mid_statement_is_given_up_within_a_minute() -> None:
    # libpq waited on the lost answer until the operating system's keepalive gave up (two
    # hours and more on Linux): a `clinic sync` from cron hung, and the window's background
    # sync stayed 'syncing' without ever saying the server could not be reached.
    why = _no_namespace()
    if why:
        pytest.skip(why)
    done = subprocess.run(
        ["unshare", "-n", sys.executable, "-c", _DROP],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    lost, seconds = done.stdout.split()
    assert lost == "OperationalError" and int(seconds) < 60, (done.stdout, done.stderr)
