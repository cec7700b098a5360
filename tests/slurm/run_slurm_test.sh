#!/usr/bin/env bash
# The workflow on a real Slurm cluster: a single node on 127.0.0.1, built here from Debian's
# packages, with accounting (slurmdbd + MariaDB) so that sacct can vouch for every job.
#
#   sudo tests/slurm/run_slurm_test.sh      (or: make test-slurm; needs root; about 2 minutes)
#
# 1. installs slurm-wlm munge slurmdbd mariadb-server if missing (without starting services)
# 2. writes /etc/slurm/slurm.conf and slurmdbd.conf (the plugin's in-job step drops SLURM_CONF,
#    so the configuration has to be at the default place; files found there are put back at
#    the end), everything else (state, spool, database, sockets, logs) in a fresh temp dir
# 3. starts munged, mariadbd, slurmdbd, slurmctld, slurmd by PID, no systemd, on free ports
# 4. runs the tiny test config of tests/test_workflow.py through workflow/profiles/slurm, and
#    the same config locally through the default profile
# 5. checks: every job that was not a localrule went through sbatch and sacct lists it
#    COMPLETED with the account and partition asked for; the catalogues of both runs are
#    byte-identical; both runs made the same PNGs
# 6. always (trap EXIT) cancels what is left in the queue and stops every daemon it started,
#    by PID (TERM, wait, KILL); the temp dir is kept only when something failed (or with
#    KEEP_SLURM_TEST=1 in the environment)
# SLURM_TEST_TIMEOUT=SECONDS limits each Snakemake run (default 900).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
SNAKEMAKE=$REPO/.venv/bin/snakemake
PYTHON=$REPO/.venv/bin/python
PACKAGES=(slurm-wlm munge slurmdbd mariadb-server)
CLUSTER=clusterphot
PARTITION=clusterphot
ACCOUNT=clusterphot
MARK="# written by clusterphot tests/slurm/run_slurm_test.sh"
RUN_TIMEOUT=${SLURM_TEST_TIMEOUT:-900} # seconds for each Snakemake run
STARTED=$(date +%s)

log() { echo "test-slurm: $*"; }
die() {
    echo "test-slurm: FAILED: $*" >&2
    exit 1
}

[[ $(id -u) -eq 0 ]] || die "run as root: it installs Debian packages and starts the Slurm daemons"
[[ -x $SNAKEMAKE ]] || die "$SNAKEMAKE not found: build .venv first (make)"
for daemon in slurmctld slurmd slurmdbd; do
    if pid=$(pgrep -x "$daemon"); then
        die "a $daemon is already running (pid ${pid//$'\n'/ }): this test starts a cluster of its own and would clash with it"
    fi
done
unset SLURM_CONF
export LC_ALL=C.UTF-8

# --- 1. packages ---------------------------------------------------------------------------
missing=()
for package in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "ok installed" || missing+=("$package")
done
if ((${#missing[@]})); then
    log "installing ${missing[*]} from Debian"
    # no service may start during the install (without systemd, invoke-rc.d would start
    # mariadb and munge through /etc/init.d and leave them running)
    policy_created=""
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        policy_created=1
    fi
    apt_log=$(mktemp)
    if ! { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
        --no-install-recommends "${missing[@]}"; } >"$apt_log" 2>&1; then
        tail -n 30 "$apt_log" >&2
        [[ -n $policy_created ]] && rm -f /usr/sbin/policy-rc.d
        die "apt-get could not install ${missing[*]} (log above)"
    fi
    [[ -n $policy_created ]] && rm -f /usr/sbin/policy-rc.d
    rm -f "$apt_log"
else
    log "Slurm, munge and MariaDB are installed"
fi

# --- 2. configuration ----------------------------------------------------------------------
T=$(mktemp -d /tmp/clusterphot-slurm.XXXXXX)
chmod 755 "$T" # the daemons run as slurm, munge and mysql
NODE=$(hostname -s)
read -r PORT_CTLD PORT_SLURMD PORT_DBD PORT_DB < <("$PYTHON" -c '
import socket
sockets = [socket.socket() for _ in range(4)]
for s in sockets:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in sockets))')
MEMORY_MB=$(awk '/^MemTotal:/ {print int($2 / 1024)}' /proc/meminfo)
REAL_MEMORY=$((MEMORY_MB * 9 / 10 < MEMORY_MB - 1024 ? MEMORY_MB * 9 / 10 : MEMORY_MB - 1024))
CPUS=$(nproc)
DB_PASSWORD=$("$PYTHON" -c 'import secrets; print(secrets.token_hex(16))')
MUNGE_SOCKET=$T/munge/munge.socket.2
DB_SOCKET=$T/mysql/mysqld.sock

mkdir -p "$T/munge" "$T/mysql/data" "$T/slurmdbd" "$T/slurmctld" "$T/slurmd" "$T/etc-saved"
chown munge:munge "$T/munge"
chown -R mysql:mysql "$T/mysql"
chown slurm:slurm "$T/slurmdbd" "$T/slurmctld"
chmod 755 "$T/munge" "$T/mysql" "$T/slurmdbd" "$T/slurmctld"

PIDS=() # the daemons, in the order they were started
NAMES=()
CONF_WRITTEN=()
RUN_PID="" # the Snakemake run in progress: its `timeout`, leader of its own process group

stop_pid() { # stop_pid NAME PID: TERM, up to 20 s, then KILL; reaps it (our child)
    local name=$1 pid=$2 i
    kill -TERM "$pid" 2>/dev/null
    for ((i = 0; i < 100; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.2
    done
    if kill -0 "$pid" 2>/dev/null; then
        echo "test-slurm: $name (pid $pid) ignored SIGTERM for 20 s: SIGKILL" >&2
        kill -KILL "$pid" 2>/dev/null
    fi
    wait "$pid" 2>/dev/null
    return 0
}

descendants() { # descendants PID: the PIDs of every process below PID
    local child
    for child in $(ps -o pid= --ppid "$1"); do
        echo "$child"
        descendants "$child"
    done
}

our_stepds() { # the slurmstepd processes of this cluster: they write to its slurmd log
    local pid
    for pid in $(pgrep -x slurmstepd); do
        ls -l "/proc/$pid/fd" 2>/dev/null | grep -qF "$T/" && echo "$pid"
    done
    return 0
}

cleanup() {
    local status=$? i pid state stray=() left=()
    set +e
    trap - EXIT INT TERM
    # a Snakemake run still going (interrupted, or after a failure): killed with the local
    # jobs it started (the plugin ignores SIGTERM while jobs run)
    if [[ -n $RUN_PID ]]; then
        kill -KILL -- "-$RUN_PID" 2>/dev/null
        wait "$RUN_PID" 2>/dev/null
    fi
    # Slurm jobs still queued or running are cancelled while slurmctld and slurmd are there
    # to end them (KillWait=5)
    if [[ " ${NAMES[*]} " == *" slurmctld "* ]] && scontrol ping >/dev/null 2>&1; then
        scancel --quiet --user=root 2>/dev/null
        for ((i = 0; i < 60; i++)); do
            [[ -z $(squeue --noheader --format=%i 2>/dev/null) ]] && break
            sleep 0.5
        done
    fi
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
        stop_pid "${NAMES[i]}" "${PIDS[i]}"
    done
    # job steps outliving slurmd (only if the cancel above could not run): each with its
    # job's processes
    for pid in $(our_stepds); do
        stray+=($(descendants "$pid") "$pid")
    done
    ((${#stray[@]})) && echo "test-slurm: killing job steps left behind: ${stray[*]}" >&2 &&
        kill -KILL "${stray[@]}" 2>/dev/null
    for ((i = 0; i < 25; i++)); do
        left=()
        for pid in "${PIDS[@]}" "${stray[@]}"; do
            state=$(ps -o stat= -p "$pid") && [[ $state != Z* ]] && left+=("$pid")
        done
        ((${#left[@]})) || break
        sleep 0.2
    done
    for conf in "${CONF_WRITTEN[@]}"; do
        rm -f "/etc/slurm/$conf"
        [[ -e $T/etc-saved/$conf ]] && mv "$T/etc-saved/$conf" "/etc/slurm/$conf"
    done
    if ((${#left[@]})); then
        echo "test-slurm: FAILED: still running after SIGKILL: ${left[*]}" >&2
        status=1
    elif ((${#PIDS[@]})); then
        log "stopped ${NAMES[*]} (pids ${PIDS[*]})"
    fi
    for name in slurmctld slurmd slurmdbd slurmstepd munged mariadbd; do
        pid=$(pgrep -x "$name") && log "note: a $name not started by this test is running (pid ${pid//$'\n'/ })"
    done
    if ((status == 0)) && [[ -z ${KEEP_SLURM_TEST:-} ]]; then
        rm -rf "$T"
    else
        echo "test-slurm: logs and workdirs kept in $T" >&2
    fi
    ((status == 0)) && log "passed in $(($(date +%s) - STARTED)) s"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

start() { # start NAME LOGFILE COMMAND...: in the background, its PID recorded
    local name=$1 logfile=$2
    shift 2
    # a session of its own: a signal to the test's process group (Ctrl-C, a timeout) does
    # not stop it before the jobs are cancelled; cleanup stops it, in order
    setsid "$@" </dev/null >>"$logfile" 2>&1 &
    PIDS+=($!)
    NAMES+=("$name")
}

run_snakemake() { # run_snakemake LOGFILE ARGUMENTS...: in the background, waited for, so
    # that a signal to this script is acted on at once
    local logfile=$1 status=0
    shift
    # the plugin ignores SIGTERM while jobs run: timeout sends SIGKILL 10 s later
    timeout -k 10 "$RUN_TIMEOUT" "$SNAKEMAKE" "$@" </dev/null >"$logfile" 2>&1 &
    RUN_PID=$!
    wait "$RUN_PID" || status=$?
    RUN_PID=""
    return "$status"
}

wait_for() { # wait_for SECONDS WHAT COMMAND...: until COMMAND succeeds
    local seconds=$1 what=$2 i
    shift 2
    for ((i = 0; i < seconds * 2; i++)); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.5
    done
    echo "test-slurm: $what did not come up within $seconds s" >&2
    return 1
}

alive() { # alive NAME LOGFILE: the last started daemon is still running
    kill -0 "${PIDS[-1]}" 2>/dev/null && return 0
    tail -n 20 "$2" >&2
    die "$1 exited at start (log above: $2)"
}

write_conf() { # write_conf NAME: /etc/slurm/NAME from stdin, an existing foreign one saved
    local conf=$1
    mkdir -p /etc/slurm
    if [[ -e /etc/slurm/$conf ]] && ! grep -qF "$MARK" "/etc/slurm/$conf"; then
        mv "/etc/slurm/$conf" "$T/etc-saved/$conf"
    fi
    CONF_WRITTEN+=("$conf")
    cat >"/etc/slurm/$conf"
}

write_conf slurm.conf <<EOF
$MARK
# a single-node cluster on 127.0.0.1 for the workflow's Slurm test; removed after the test
ClusterName=$CLUSTER
SlurmctldHost=$NODE(127.0.0.1)
SlurmctldPort=$PORT_CTLD
SlurmdPort=$PORT_SLURMD
SlurmUser=slurm
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$MUNGE_SOCKET
CredType=cred/munge
StateSaveLocation=$T/slurmctld
SlurmdSpoolDir=$T/slurmd
SlurmctldPidFile=$T/slurmctld/slurmctld.pid
SlurmdPidFile=$T/slurmd/slurmd.pid
SlurmctldLogFile=$T/slurmctld/slurmctld.log
SlurmdLogFile=$T/slurmd/slurmd.log
# no cgroups: processes tracked through /proc, no CPU binding
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=30
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=$PORT_DBD
# the MUNGE socket to reach slurmdbd through (it is not the default one)
AccountingStoragePass=$MUNGE_SOCKET
AccountingStorageEnforce=associations
# sacct shows the comment the plugin gives each job (rule and wildcards)
AccountingStoreFlags=job_comment
JobCompType=jobcomp/none
MailProg=/bin/true
KillWait=5
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$REAL_MEMORY State=UNKNOWN
PartitionName=$PARTITION Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF

write_conf slurmdbd.conf <<EOF
$MARK
AuthType=auth/munge
AuthInfo=socket=$MUNGE_SOCKET
DbdHost=$NODE
DbdAddr=127.0.0.1
DbdPort=$PORT_DBD
SlurmUser=slurm
LogFile=$T/slurmdbd/slurmdbd.log
PidFile=$T/slurmdbd/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$PORT_DB
StorageUser=slurm
StoragePass=$DB_PASSWORD
StorageLoc=slurm_acct_db
EOF
chown slurm:slurm /etc/slurm/slurmdbd.conf
chmod 600 /etc/slurm/slurmdbd.conf
log "cluster '$CLUSTER': node $NODE (127.0.0.1, $CPUS CPUs, ${REAL_MEMORY} MB), ports ctld $PORT_CTLD, slurmd $PORT_SLURMD, dbd $PORT_DBD, db $PORT_DB; state in $T"

# --- 3. daemons ----------------------------------------------------------------------------
mungekey --create --keyfile="$T/munge/munge.key" >/dev/null
chown munge:munge "$T/munge/munge.key"
chmod 400 "$T/munge/munge.key"
start munged "$T/munge/munged.out" setpriv --reuid=munge --regid=munge --init-groups \
    munged --foreground --socket="$MUNGE_SOCKET" --key-file="$T/munge/munge.key" \
    --pid-file="$T/munge/munged.pid" --log-file="$T/munge/munged.log" --seed-file="$T/munge/munged.seed"
wait_for 20 munged munge --socket="$MUNGE_SOCKET" --string=ok || die "see the logs in $T"
alive munged "$T/munge/munged.log"

mariadb-install-db --no-defaults --user=mysql --datadir="$T/mysql/data" \
    --auth-root-authentication-method=socket --skip-test-db --skip-name-resolve \
    >"$T/mysql/install.log" 2>&1 || {
    tail -n 20 "$T/mysql/install.log" >&2
    die "mariadb-install-db failed (log above)"
}
start mariadbd "$T/mysql/mariadbd.out" mariadbd --no-defaults --user=mysql --datadir="$T/mysql/data" \
    --socket="$DB_SOCKET" --port="$PORT_DB" --bind-address=127.0.0.1 --skip-name-resolve \
    --pid-file="$T/mysql/mariadbd.pid" --log-error="$T/mysql/mariadbd.log" \
    --innodb-lock-wait-timeout=900
wait_for 60 mariadbd mariadb-admin --no-defaults --socket="$DB_SOCKET" --user=root ping || die "see the logs in $T"
alive mariadbd "$T/mysql/mariadbd.log"
mariadb --no-defaults --socket="$DB_SOCKET" --user=root <<EOF
CREATE DATABASE IF NOT EXISTS slurm_acct_db;
CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY '$DB_PASSWORD';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
EOF

start slurmdbd "$T/slurmdbd/slurmdbd.out" slurmdbd -D
wait_for 60 slurmdbd sacctmgr --noheader list cluster || die "see the logs in $T"
alive slurmdbd "$T/slurmdbd/slurmdbd.log"
if ! sacctmgr --noheader --parsable2 list cluster format=cluster | grep -qx "$CLUSTER"; then
    sacctmgr --immediate add cluster "$CLUSTER" >/dev/null
fi
if ! sacctmgr --noheader --parsable2 list account format=account | grep -qx "$ACCOUNT"; then
    sacctmgr --immediate add account "$ACCOUNT" cluster="$CLUSTER" \
        description="clusterphot Slurm test" organization=clusterphot >/dev/null
fi
sacctmgr --immediate add user root account="$ACCOUNT" cluster="$CLUSTER" >/dev/null 2>&1 || true
sacctmgr --noheader --parsable2 list association user=root format=account | grep -qx "$ACCOUNT" ||
    die "sacctmgr did not add root to account $ACCOUNT"

start slurmctld "$T/slurmctld/slurmctld.out" slurmctld -D
wait_for 60 slurmctld scontrol ping || die "see the logs in $T"
alive slurmctld "$T/slurmctld/slurmctld.log"
start slurmd "$T/slurmd/slurmd.out" slurmd -D -N "$NODE"
node_idle() { [[ $(sinfo --noheader --nodes="$NODE" --format=%T) == idle ]]; }
if ! wait_for 60 "node $NODE" node_idle; then
    sinfo --noheader --list-reasons >&2 || true
    tail -n 20 "$T/slurmd/slurmd.log" >&2
    die "node $NODE is not idle: $(sinfo --noheader --nodes="$NODE" --format=%T)"
fi
log "Slurm is up: $(sinfo --noheader --format='partition %P, node %N %T, %c CPUs, %m MB')"

# --- 4. the workflow through Slurm, and locally --------------------------------------------
# the tiny config of the workflow tests, from the tests themselves
CONFIG=$T/tiny.yaml
(cd "$REPO" && "$PYTHON" -c 'import yaml; from tests.test_workflow import TINY; print(yaml.safe_dump(TINY))') >"$CONFIG"
# the profile's default resources plus the site's partition and account, on the command line
# as docs/slurm.md tells a user to set them
mapfile -t RESOURCES < <("$PYTHON" -c '
import sys, yaml
profile = yaml.safe_load(open(sys.argv[1]))
for name, value in profile["default-resources"].items():
    print(f"{name}={value}")' "$REPO/workflow/profiles/slurm/config.yaml")
RESOURCES+=("slurm_partition=$PARTITION" "slurm_account=$ACCOUNT")

cd "$REPO"
log "dry run: the jobs of the tiny config"
"$SNAKEMAKE" -s Snakefile -d "$T/dry" --configfile "$CONFIG" --dry-run >"$T/dry.log" 2>&1 ||
    die "dry run failed: $(tail -n 20 "$T/dry.log")"
DAG_JOBS=$(awk '/^total/ {print $2; exit}' "$T/dry.log")
[[ $DAG_JOBS =~ ^[0-9]+$ ]] || die "no job count in the dry run's output ($T/dry.log)"

log "Slurm run: --workflow-profile workflow/profiles/slurm ($DAG_JOBS jobs)"
slurm_started=$(date +%s)
# Status checks sooner than the plugin's defaults (40 s after a job ended), to keep it short.
if ! run_snakemake "$T/slurm.log" --workflow-profile workflow/profiles/slurm \
    -s Snakefile -d "$T/slurm" --configfile "$CONFIG" \
    --default-resources "${RESOURCES[@]}" \
    --slurm-init-seconds-before-status-checks 2 --seconds-between-status-checks 2 \
    --slurm-keep-successful-logs --slurm-logdir "$T/slurm-logs"; then
    tail -n 40 "$T/slurm.log" >&2
    die "the Slurm run failed or timed out (log above: $T/slurm.log; Slurm logs in $T/slurm-logs)"
fi
slurm_seconds=$(($(date +%s) - slurm_started))

log "local run: the default profile"
local_started=$(date +%s)
if ! run_snakemake "$T/local.log" -s Snakefile -d "$T/local" --configfile "$CONFIG" --cores 2; then
    tail -n 40 "$T/local.log" >&2
    die "the local run failed (log above: $T/local.log)"
fi
local_seconds=$(($(date +%s) - local_started))

# --- 5. checks -----------------------------------------------------------------------------
grep -q "workflow specific profile workflow/profiles/slurm" "$T/slurm.log" ||
    die "the Slurm run did not use workflow/profiles/slurm"
RUN_ID=$(sed -n 's/.*SLURM run ID: \([0-9a-f-]*\).*/\1/p' "$T/slurm.log" | head -n 1)
[[ -n $RUN_ID ]] || die "no 'SLURM run ID' in the Slurm run's log: did it use the slurm executor?"
mapfile -t SUBMITTED < <(sed -n 's/.*has been submitted with SLURM jobid \([0-9]*\).*/\1/p' "$T/slurm.log" | sort -n)
LOCAL_JOBS=$(grep -c '^localrule ' "$T/slurm.log" || true)
REMOTE_JOBS=$((DAG_JOBS - LOCAL_JOBS))
((${#SUBMITTED[@]} == REMOTE_JOBS)) ||
    die "${#SUBMITTED[@]} jobs went through sbatch, but the DAG has $DAG_JOBS jobs of which $LOCAL_JOBS are local"

# every job of this run (its jobs are named by the run ID), as the accounting database saw it
sacct --noheader --parsable2 --allocations --name="$RUN_ID" \
    --starttime="$(date -d '-1 day' +%Y-%m-%dT%H:%M:%S)" \
    --format=JobIDRaw,State,ExitCode,Account,Partition,Elapsed,ReqMem,Timelimit,Comment \
    >"$T/sacct.txt"
mapfile -t ACCOUNTED < <(cut -d'|' -f1 "$T/sacct.txt" | sort -n)
[[ "${ACCOUNTED[*]}" == "${SUBMITTED[*]}" ]] ||
    die "sacct lists jobs '${ACCOUNTED[*]}' for run $RUN_ID, Snakemake submitted '${SUBMITTED[*]}'"
COMPLETED=$(awk -F'|' -v account="$ACCOUNT" -v partition="$PARTITION" \
    '$2 == "COMPLETED" && $3 == "0:0" && $4 == account && $5 == partition' "$T/sacct.txt" | wc -l)
if ((COMPLETED != ${#SUBMITTED[@]})); then
    cat "$T/sacct.txt" >&2
    die "only $COMPLETED of ${#SUBMITTED[@]} Slurm jobs are COMPLETED (exit 0:0, account $ACCOUNT, partition $PARTITION)"
fi

# the same outputs: catalogues byte for byte, the same images
(cd "$T/slurm" && find results -type f | sort) >"$T/slurm-files.txt"
(cd "$T/local" && find results -type f | sort) >"$T/local-files.txt"
diff "$T/slurm-files.txt" "$T/local-files.txt" >&2 ||
    die "the Slurm and the local run wrote different files (diff above: < Slurm, > local)"
mapfile -t CATALOGUES < <(grep '\.ecsv$' "$T/slurm-files.txt")
mapfile -t IMAGES < <(grep '\.png$' "$T/slurm-files.txt")
((${#CATALOGUES[@]} > 0 && ${#IMAGES[@]} > 0)) || die "no catalogues or no PNGs in results/"
for catalogue in "${CATALOGUES[@]}"; do
    cmp -s "$T/slurm/$catalogue" "$T/local/$catalogue" ||
        die "$catalogue differs between the Slurm and the local run ($T/slurm, $T/local)"
done
for image in "${IMAGES[@]}"; do
    [[ -s $T/slurm/$image && -s $T/local/$image ]] || die "$image is empty in one of the runs"
done
identical_images=0
for image in "${IMAGES[@]}"; do
    cmp -s "$T/slurm/$image" "$T/local/$image" && identical_images=$((identical_images + 1))
done

# --- summary -------------------------------------------------------------------------------
log "sacct, run $RUN_ID:"
column -t -s'|' -N JOBID,STATE,EXIT,ACCOUNT,PARTITION,ELAPSED,REQMEM,TIMELIMIT,COMMENT "$T/sacct.txt" | sed 's/^/    /'
log "jobs: $DAG_JOBS in the DAG, $LOCAL_JOBS local, ${#SUBMITTED[@]} submitted with sbatch, $COMPLETED COMPLETED in sacct"
log "outputs: ${#CATALOGUES[@]} catalogues byte-identical to the local run's; ${#IMAGES[@]} PNGs in both ($identical_images byte-identical)"
log "time: Slurm run ${slurm_seconds} s, local run ${local_seconds} s"
