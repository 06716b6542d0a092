# Shared set-up for the MPI integration tests (sourced): $1 = ladon binary, $2 = source dir,
# $3 = build dir. Provides $tmp (removed on exit), run_mpi, synth, metric helpers.
set -euo pipefail
LADON=$1
SRC=$2
BUILD=$3
tmp=$(mktemp -d)
trap '[ -n "${LDN_KEEP_TMP:-}" ] || rm -rf "$tmp"' EXIT
export OPENBLAS_NUM_THREADS=1

run_mpi() { # run_mpi NP ARGS...: mpirun on loopback, oversubscribed
  local np=$1
  shift
  local flags=(--oversubscribe --mca btl self,vader,tcp --mca btl_tcp_if_include lo
    --mca oob_tcp_if_include lo -x OPENBLAS_NUM_THREADS=1)
  [ "$(id -u)" -eq 0 ] && flags+=(--allow-run-as-root)
  mpirun -np "$np" "${flags[@]}" "$@"
}

synth() { # synth DIR TASKS TRAIN [SEED]
  "$LADON" data synth "$1" --tasks "$2" --features 32 --rank 4 --classes 4 --train "$3" \
    --test 400 --relatedness 0.9 --seed "${4:-3}" >/dev/null
}

# last_acc RUN_DIR TASK: the last test accuracy of TASK in RUN_DIR/metrics.jsonl
last_acc() {
  grep "\"task\":\"$2\"" "$1/metrics.jsonl" | tail -n 1 | sed -n 's/.*"accuracy":\([0-9.]*\).*/\1/p'
}

fail() { echo "FAIL: $*"; exit 1; }

pid_of() { # pid_of RANK CONFIG: the process of world rank RANK of the job started with CONFIG
  for p in /proc/[0-9]*; do {
    if tr '\0' '\n' <"$p/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$1" &&
      tr '\0' ' ' <"$p/cmdline" 2>/dev/null | grep -qF "$2"; then
      echo "${p#/proc/}"
      return 0
    fi
  } 2>/dev/null; done
  return 1
}

wait_step() { # wait_step LOG STEP: until LOG's progress lines report a step >= STEP (30 s at most)
  local s
  for _ in $(seq 600); do
    s=$(grep -o 'step [0-9]*/' "$1" 2>/dev/null | tail -1 | tr -dc 0-9)
    [ -n "$s" ] && [ "$s" -ge "$2" ] && return 0
    sleep 0.05
  done
  return 1
}

# need_h5py: $PY = a python3 that imports h5py and numpy (the PATH one may be a pyenv shim)
need_h5py() {
  PY=""
  for p in python3 /usr/bin/python3; do
    if "$p" -c 'import h5py, numpy' 2>/dev/null; then PY=$p; break; fi
  done
  [ -n "$PY" ] || fail "needs python3 with h5py and numpy (launch/setup-deps installs them)"
}
