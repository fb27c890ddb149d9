#!/usr/bin/env bash
# The Apache Flink part of setup (scripts/setup.sh runs it; it can also run alone once the
# Debian packages are in place). Idempotent, pinned with sha256 hashes. It installs what the
# Flink comparison tests (Tests/integration/test_flink_export.py) run exported scripts on:
#
#   - .deps/flink-venv: Python 3.11 with apache-flink==2.0.0 (PyFlink: the Flink 2.0.0 runtime as
#     a local mini-cluster) and its dependencies, hash-pinned in scripts/requirements-flink.txt;
#     reinstalled only when that file changes
#   - .deps/flink/lib: flink-connector-kafka 4.0.1-2.0, kafka-clients 3.9.1 and
#     flink-connector-jdbc-core 4.0.0-2.0, taken from the shigawire-apache-flink-libraries==2.0.0.post1
#     wheel (hash-checked), plus weir-mysql-dialect.jar compiled from scripts/flink/mysql-dialect
#     (jdbc-core 4.0 ships no MySQL dialect); rebuilt when its sources change
#
# Needs Java 17 (openjdk-17-jdk-headless) and MariaDB Connector/J (libmariadb-java,
# /usr/share/java/mariadb-java-client.jar): setup.sh installs both with its Debian packages.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEPS="$ROOT/.deps"
VENV="$DEPS/flink-venv"
LIB="$DEPS/flink/lib"
REQS="$ROOT/scripts/requirements-flink.txt"
CONNECTORS_PKG="shigawire-apache-flink-libraries==2.0.0.post1"
CONNECTORS_WHEEL=shigawire_apache_flink_libraries-2.0.0.post1-py3-none-any.whl
CONNECTORS_SHA256=aaa65537d3f0c0ff279185d8243024f0efd95788ba044bf249ba0f40b69289cd
CONNECTOR_JARS="flink-connector-kafka.jar kafka-clients.jar flink-connector-jdbc-core.jar"
DIALECT_SRC="$ROOT/scripts/flink/mysql-dialect"
MARIADB_JAR=/usr/share/java/mariadb-java-client.jar

log() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }
started=$(date +%s)

JAVA_HOME="${JAVA_HOME:-/usr/lib/jvm/java-17-openjdk-amd64}"
[ -x "$JAVA_HOME/bin/javac" ] || { echo "Java 17 JDK not found at $JAVA_HOME (apt-get install openjdk-17-jdk-headless)" >&2; exit 1; }
[ -f "$MARIADB_JAR" ] || { echo "$MARIADB_JAR missing (apt-get install libmariadb-java)" >&2; exit 1; }

# 1. PyFlink venv ------------------------------------------------------------
PY=""
for c in python3.11 python3; do
  if command -v "$c" >/dev/null 2>&1 && [ "$("$c" -c 'import sys; print("%d.%d" % sys.version_info[:2])')" = "3.11" ]; then
    PY="$c"; break
  fi
done
[ -n "$PY" ] || { echo "PyFlink 2.0 needs Python 3.11 (python3.11 not found)" >&2; exit 1; }
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
REQS_SUM="$(sha256sum "$REQS" | cut -d' ' -f1)"
if [ "$(cat "$VENV/.requirements.sha256" 2>/dev/null)" != "$REQS_SUM" ]; then
  log "installing PyFlink 2.0.0 into .deps/flink-venv (pinned, hash-checked: scripts/requirements-flink.txt; ~830 MB, 2-3 minutes)"
  "$VENV/bin/pip" install -q --disable-pip-version-check --require-hashes -r "$REQS"
  echo "$REQS_SUM" > "$VENV/.requirements.sha256"
  rm -f "$LIB/.weir-mysql-dialect.sha256"   # the dialect is compiled against this venv's jars
else
  log "PyFlink present (.deps/flink-venv)"
fi
PYFLINK="$("$VENV/bin/python" -c 'import os, pyflink; print(os.path.dirname(pyflink.__file__))')"

# 2. Connector jars ------------------------------------------------------------
mkdir -p "$LIB"
have_jars=1
for j in $CONNECTOR_JARS; do [ -f "$LIB/$j" ] || have_jars=0; done
if [ "$have_jars" = 1 ] && [ "$(cat "$LIB/.connectors" 2>/dev/null)" = "$CONNECTORS_SHA256" ]; then
  log "Flink connector jars present (.deps/flink/lib)"
else
  WHEELD="$DEPS/wheels"; mkdir -p "$WHEELD"
  WHEEL="$WHEELD/$CONNECTORS_WHEEL"
  if [ ! -f "$WHEEL" ] || ! echo "$CONNECTORS_SHA256  $WHEEL" | sha256sum -c --quiet - 2>/dev/null; then
    log "downloading $CONNECTORS_PKG (92 MB; only three of its jars are used)"
    rm -f "$WHEEL"
    # pip checks the hash as it downloads.
    echo "$CONNECTORS_PKG --hash=sha256:$CONNECTORS_SHA256" > "$WHEELD/connectors.req"
    "$VENV/bin/pip" download -q --disable-pip-version-check --no-deps --require-hashes \
      -r "$WHEELD/connectors.req" -d "$WHEELD"
    rm -f "$WHEELD/connectors.req"
  fi
  echo "$CONNECTORS_SHA256  $WHEEL" | sha256sum -c --quiet - || { echo "connector wheel checksum mismatch: $WHEEL" >&2; exit 1; }
  members=""; for j in $CONNECTOR_JARS; do members="$members pyflink/lib/$j"; done
  # shellcheck disable=SC2086
  unzip -q -o -j "$WHEEL" $members -d "$LIB"
  echo "$CONNECTORS_SHA256" > "$LIB/.connectors"
  rm -f "$LIB/.weir-mysql-dialect.sha256"
  log "Flink connector jars extracted into .deps/flink/lib"
fi

# 3. The MySQL dialect ---------------------------------------------------------
DIALECT_JAR="$LIB/weir-mysql-dialect.jar"
DIALECT_SUM="$( (cd "$DIALECT_SRC" && find . -type f | LC_ALL=C sort | xargs sha256sum) | sha256sum | cut -c1-16)"
if [ -f "$DIALECT_JAR" ] && [ "$(cat "$LIB/.weir-mysql-dialect.sha256" 2>/dev/null)" = "$DIALECT_SUM" ]; then
  log "Weir's MySQL dialect for Flink JDBC present"
else
  log "compiling Weir's MySQL dialect for flink-connector-jdbc-core 4.0"
  BUILD="$(mktemp -d)"
  CP="$LIB/flink-connector-jdbc-core.jar:$(ls "$PYFLINK"/lib/flink-dist-*.jar):$(ls "$PYFLINK"/lib/flink-table-api-java-uber-*.jar)"
  find "$DIALECT_SRC/src" -name '*.java' -print0 | xargs -0 "$JAVA_HOME/bin/javac" -nowarn --release 11 -cp "$CP" -d "$BUILD"
  cp -r "$DIALECT_SRC/resources/." "$BUILD/"
  "$JAVA_HOME/bin/jar" --create --file "$DIALECT_JAR.tmp" -C "$BUILD" .
  mv "$DIALECT_JAR.tmp" "$DIALECT_JAR"
  rm -rf "$BUILD"
  echo "$DIALECT_SUM" > "$LIB/.weir-mysql-dialect.sha256"
  log "built .deps/flink/lib/weir-mysql-dialect.jar"
fi
log "Flink part done in $(( $(date +%s) - started )) s"
