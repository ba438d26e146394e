#!/usr/bin/env bash
# Idempotent setup: Python venv with the pinned dependencies, JVM jars from Maven Central, the
# project's SQL functions (udf/), and redis-server from Debian's packages. Each step is skipped
# when its inputs have not changed.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK="${ADLOOP_WORK_DIR:-$ROOT/.work}"
PY="${PYTHON:-python3.11}"
cd "$ROOT"
mkdir -p "$WORK"

fail() { echo "setup: $*" >&2; exit 1; }
say() { echo "setup: $*"; }
stamp_ok() { [[ -f "$1" && "$(cat "$1")" == "$2" ]]; }

command -v "$PY" >/dev/null || fail "$PY not found: install Python 3.11 (or set PYTHON=...)"
command -v java >/dev/null || fail "java not found: install a JDK 17 (apt-get install openjdk-17-jdk-headless)"
command -v mvn >/dev/null || fail "mvn not found: install Maven (apt-get install maven)"

# 1. Python environment.
py_hash="$(sha256sum pyproject.toml | cut -c1-16)"
if ! stamp_ok .venv/.adloop-stamp "$py_hash"; then
  say "creating .venv and installing pinned dependencies (first run takes a few minutes)"
  [[ -x .venv/bin/python ]] || "$PY" -m venv .venv
  # compat mode puts the project root on sys.path, so every top-level package is importable.
  { .venv/bin/pip install --upgrade pip \
    && .venv/bin/pip install -e ".[dev]" --config-settings editable_mode=compat; } > "$WORK/pip.log" 2>&1 \
    || { tail -5 "$WORK/pip.log" >&2; fail "pip install failed (full log: $WORK/pip.log)"; }
  echo "$py_hash" > .venv/.adloop-stamp
fi

# 2. JVM jars: the Kafka broker and the Flink connector/format jars.
fetch_jars() {  # pom, target dir
  local pom="$1" dest="$2" hash
  hash="$(sha256sum "$pom" | cut -c1-16)"
  if ! stamp_ok "$dest/.stamp" "$hash"; then
    say "fetching jars of $(basename "$pom") into $dest"
    rm -rf "$dest"
    mvn -q -B -Dstyle.color=never -f "$pom" dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$dest" \
      || fail "Maven could not fetch the jars of $pom"
    echo "$hash" > "$dest/.stamp"
  fi
}
fetch_jars flink-conf/kafka-broker.pom.xml "$WORK/jars/kafka"
fetch_jars flink-conf/flink-jars.pom.xml "$WORK/jars/flink"
fetch_jars flink-conf/sql-client.pom.xml "$WORK/jars/sql-client"

# 3. The project's own SQL functions (udf/, Java), next to the connector jars so every job and the
# SQL client load them. Their JUnit tests run in `make test`.
udf_hash="$(cat udf/pom.xml $(find udf/src -type f | sort) | sha256sum | cut -c1-16)"
if ! stamp_ok "$WORK/jars/flink/.udf-stamp" "$udf_hash" || [[ ! -f "$WORK/jars/flink/adloop-udf.jar" ]]; then
  say "building the SQL functions in udf/"
  mvn -q -B -Dstyle.color=never -DskipTests -f udf/pom.xml clean package > "$WORK/udf-build.log" 2>&1 \
    || { tail -20 "$WORK/udf-build.log" >&2; fail "Maven could not build udf/ (full log: $WORK/udf-build.log)"; }
  cp udf/target/adloop-udf.jar "$WORK/jars/flink/adloop-udf.jar"
  echo "$udf_hash" > "$WORK/jars/flink/.udf-stamp"
fi

# 4. Redis server.
if ! command -v redis-server >/dev/null; then
  if [[ "$(id -u)" == 0 ]]; then
    say "installing redis-server from Debian's packages"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null) \
      || fail "apt-get could not install redis-server"
    # The package starts a system-wide server on 6379; the project runs its own, so stop that one.
    (service redis-server stop >/dev/null 2>&1 || true)
  else
    fail "redis-server not found: run 'sudo apt-get install redis-server'"
  fi
fi
say "ready (venv .venv, jars in $WORK/jars, $(redis-server --version | cut -d' ' -f3))"
