#!/bin/sh
# A one-node Slurm cluster on 127.0.0.1 for the tests (Debian 12: slurm-wlm 22.05, munge),
# everything in DIR: its own munge key, socket and daemons, slurm.conf, state and logs.
#   slurm_cluster.sh start DIR   starts munged, slurmctld and slurmd; waits for the node to be idle
#                                (prints the reason and exits 77 where it cannot: not root, not
#                                installed); clients then need SLURM_CONF=DIR/slurm.conf
#   slurm_cluster.sh stop DIR    stops the daemons it started (by the pids in DIR), nothing else
set -eu
action=$1
dir=$2

stop() {
  # Jobs of this cluster still running (a test that failed part way) go first: their steps
  # outlive slurmd.
  if [ -s "$dir/slurmctld.pid" ] && kill -0 "$(cat "$dir/slurmctld.pid")" 2>/dev/null; then
    SLURM_CONF="$dir/slurm.conf" scancel --full --user="$(id -un)" 2>/dev/null || true
    sleep 1
  fi
  for name in slurmd slurmctld munged; do
    pidfile="$dir/$name.pid"
    [ -s "$pidfile" ] || continue
    pid=$(cat "$pidfile")
    kill "$pid" 2>/dev/null || true
    i=0
    while kill -0 "$pid" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$pidfile"
  done
}

skip() {
  echo "SKIP: $*"
  exit 77
}

if [ "$action" = stop ]; then
  stop
  exit 0
fi

[ "$(id -u)" = 0 ] || skip "the test cluster runs slurmd, which needs root"
for program in munged mungekey slurmctld slurmd sbatch sinfo; do
  command -v "$program" >/dev/null 2>&1 || [ -x "/usr/sbin/$program" ] ||
    skip "$program is not installed (tools/install_deps.sh installs slurm-wlm and munge)"
done
PATH=$PATH:/usr/sbin

mkdir -p "$dir/state" "$dir/spool" "$dir/munge"
chmod 700 "$dir/munge"
# A key of the cluster's own: the machine's munged (if any) is left alone.
mungekey --create --keyfile="$dir/munge/munge.key" --force 2>/dev/null ||
  dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 2>/dev/null
chmod 600 "$dir/munge/munge.key"
munged --force --key-file="$dir/munge/munge.key" --socket="$dir/munge/munge.sock" \
  --pid-file="$dir/munged.pid" --log-file="$dir/munged.log" --seed-file="$dir/munge/seed" ||
  skip "munged did not start: $(tail -n 3 "$dir/munged.log" 2>/dev/null)"

# Two free TCP ports on 127.0.0.1.
ports=$(/usr/bin/python3 -c 'import socket
s=[socket.socket() for _ in range(2)]
[x.bind(("127.0.0.1", 0)) for x in s]
print(" ".join(str(x.getsockname()[1]) for x in s))')
set -- $ports
cpus=$(nproc)
cat >"$dir/slurm.conf" <<EOF
ClusterName=upframetest
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort=$1
SlurmdPort=$2
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$dir/munge/munge.sock
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
MinJobAge=300
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=1000 State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
EOF
export SLURM_CONF="$dir/slurm.conf"
slurmctld -f "$SLURM_CONF" || skip "slurmctld did not start: $(tail -n 3 "$dir/slurmctld.log")"
slurmd -f "$SLURM_CONF" -N localhost || skip "slurmd did not start: $(tail -n 3 "$dir/slurmd.log")"
i=0
until sinfo -h -N -o %t 2>/dev/null | grep -q idle; do
  i=$((i + 1))
  if [ $i -gt 300 ]; then
    echo "the node never became idle:"
    sinfo -N 2>&1 || true
    tail -n 5 "$dir/slurmctld.log" "$dir/slurmd.log"
    stop
    exit 1
  fi
  sleep 0.1
done
echo "cluster up: SLURM_CONF=$SLURM_CONF"
