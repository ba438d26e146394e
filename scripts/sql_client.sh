#!/usr/bin/env bash
# The Flink SQL client with the project's jars, running its queries on a local mini-cluster:
#   scripts/sql_client.sh -i sql/init.sql                # interactive
#   scripts/sql_client.sh -i sql/init.sql -f sql/queries/ctr_by_creative_hour.sql
# Set FLINK_CONF_DIR to a cluster's config directory to run the queries on that cluster instead.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK="${ADLOOP_WORK_DIR:-$ROOT/.work}"
FLINK_HOME="$("$ROOT/.venv/bin/python" -c 'import os, pyflink; print(os.path.dirname(pyflink.__file__))')"
ls "$WORK"/jars/sql-client/flink-sql-gateway-*.jar >/dev/null 2>&1 \
  || { echo "sql_client: SQL gateway jar missing in $WORK/jars/sql-client: run scripts/setup.sh" >&2; exit 1; }

# PyFlink ships the SQL client without the gateway it needs; assemble an opt/ with both.
OPT="$WORK/flink-opt"
mkdir -p "$OPT"
ln -sf "$FLINK_HOME"/opt/*.jar "$WORK"/jars/sql-client/*.jar "$OPT"/
export FLINK_OPT_DIR="$OPT"

if [[ -z "${FLINK_CONF_DIR:-}" ]]; then
  export FLINK_CONF_DIR="$WORK/sql-client-conf"
  mkdir -p "$FLINK_CONF_DIR"
  cp "$FLINK_HOME"/conf/log4j*.properties "$FLINK_CONF_DIR"/
  printf 'execution:\n  target: local\ntable:\n  local-time-zone: UTC\nparallelism:\n  default: 1\n' \
    > "$FLINK_CONF_DIR/config.yaml"
fi

cd "$ROOT"  # relative table paths in sql/init.sql are relative to the project root
jars=()
for jar in "$WORK"/jars/flink/*.jar; do jars+=(-j "$jar"); done
if [[ " $* " != *" -f "* && " $* " != *" --file "* ]]; then
  exec "$FLINK_HOME/bin/sql-client.sh" "${jars[@]}" "$@"
fi
# With -f the client exits 0 even when a statement fails (it prints the error and skips the rest
# of the file); a script run must fail instead.
out="$(mktemp)"
trap 'rm -f "$out"' EXIT
set +e
"$FLINK_HOME/bin/sql-client.sh" "${jars[@]}" "$@" | tee "$out"
rc=${PIPESTATUS[0]}
set -e
if [[ $rc -eq 0 ]] && grep -q '\[ERROR\] Could not execute SQL statement' "$out"; then
  echo "sql_client: a statement failed (its error is above); the statements after it did not run" >&2
  exit 1
fi
exit "$rc"
