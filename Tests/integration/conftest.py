"""Fixtures for end-to-end tests: the real Tansu broker and MariaDB started by
scripts/test.sh (ports from WEIR_KAFKA_PORT / WEIR_MYSQL_PORT), and the weir
binary under test (WEIR_BIN)."""
import os
import pathlib
import subprocess
import sys
import uuid

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

import reference  # noqa: E402

KAFKA_PORT = int(os.environ.get("WEIR_KAFKA_PORT", "19092"))
MYSQL_PORT = int(os.environ.get("WEIR_MYSQL_PORT", "13306"))
BOOTSTRAP = f"127.0.0.1:{KAFKA_PORT}"
WEIR = os.environ.get("WEIR_BIN", str(ROOT / ".build" / "debug" / "weir"))


@pytest.fixture(scope="session", autouse=True)
def servers_up():
    import socket
    for port, what in ((KAFKA_PORT, "Tansu"), (MYSQL_PORT, "MariaDB")):
        s = socket.socket()
        s.settimeout(2)
        try:
            s.connect(("127.0.0.1", port))
        except OSError:
            pytest.fail(f"{what} is not listening on 127.0.0.1:{port}: run scripts/test.sh (or scripts/servers.sh start)")
        finally:
            s.close()
    assert pathlib.Path(WEIR).exists(), f"weir binary not found at {WEIR}: build it first"


@pytest.fixture
def names():
    """Unique topic / database names per test."""
    tag = uuid.uuid4().hex[:8]
    return {"topic": f"t_{tag}", "db": f"it_{tag}"}


@pytest.fixture
def db(names):
    conn = reference.connect(MYSQL_PORT)
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {names['db']}")
    conn.select_db(names["db"])
    yield conn
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE {names['db']}")
        cur.execute(f"DROP DATABASE IF EXISTS {names['db']}_shadow")  # a drill's shadow tables
    conn.close()


def weir(*args, timeout=120, check=True):
    """Runs the weir CLI; returns the CompletedProcess (stdout/stderr as text)."""
    p = subprocess.run([WEIR, *args], capture_output=True, text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError(f"weir {' '.join(args)} exited {p.returncode}\nstdout:\n{p.stdout}\nstderr:\n{p.stderr}")
    return p


def write_spec(tmp_path, text, name="job.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def produce_stream(topic, start, count, seed, partitions=4):
    """Appends events start..<start+count of the seeded benchmark stream (`weir produce`);
    the first call (start 0) creates the topic."""
    args = ["produce", "--bootstrap", BOOTSTRAP, "--topic", topic, "--count", str(count), "--seed", str(seed),
            "--start", str(start)]
    if start == 0:
        args += ["--partitions", str(partitions)]
    weir(*args)
