# Shared by quickstart.sh and test.sh: build directories and free ports.
# shellcheck shell=bash

CG_TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# Build callgate in $CG_TOP/build/<name> (out of tree) with extra configure flags.
cg_build() {
  local name=$1; shift
  local dir="$CG_TOP/build/$name"
  if [ ! -x "$CG_TOP/configure" ] || [ "$CG_TOP/configure.ac" -nt "$CG_TOP/configure" ] \
     || [ "$CG_TOP/Makefile.am" -nt "$CG_TOP/Makefile.in" ]; then
    (cd "$CG_TOP" && autoreconf -fi >/dev/null 2>&1) || { echo "autoreconf failed" >&2; return 1; }
  fi
  mkdir -p "$dir"
  if [ ! -f "$dir/Makefile" ] || [ "$CG_TOP/configure" -nt "$dir/Makefile" ]; then
    (cd "$dir" && "$CG_TOP/configure" "$@" >configure.out 2>&1) \
      || { cat "$dir/configure.out" >&2; return 1; }
  fi
  make -C "$dir" -j"$(nproc)" >"$dir/make.out" 2>&1 || { tail -40 "$dir/make.out" >&2; return 1; }
}

# A TCP port on 127.0.0.1 that nothing listens on right now. Drawn below
# Linux's ephemeral range (32768 and up) so that it is not the local end of
# some outgoing connection, and never one handed out earlier by this shell.
# Sets CG_PORT (called directly, not in $(...), which would lose the record).
CG_PORTS_TAKEN=" "
cg_free_port() {
  local p
  for _ in $(seq 1 200); do
    p=$(( 20000 + RANDOM % 12000 ))
    case "$CG_PORTS_TAKEN" in *" $p "*) continue ;; esac
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      CG_PORTS_TAKEN="$CG_PORTS_TAKEN$p "
      CG_PORT=$p
      return 0
    fi
  done
  return 1
}

# Wait until something accepts on 127.0.0.1:$1 (up to ~10 s).
cg_wait_port() {
  for _ in $(seq 1 200); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  return 1
}
