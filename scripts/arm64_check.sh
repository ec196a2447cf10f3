#!/usr/bin/env bash
# The board install on an emulated 64-bit Raspberry Pi OS userland, checked against x86.
#
#   sudo scripts/arm64_check.sh [--scans N|all] [--runs N] [--rebuild]
#
# Raspberry Pi OS (bookworm, arm64) is Debian bookworm for aarch64 with Python 3.11. This builds,
# once, a minimal arm64 bookworm root with python3 and python3-venv (mmdebstrap, cached in
# $MIAS_EDGE_CACHE/arm64-root, default /var/cache/mias-edge), runs it under qemu-user-static
# and inside it, from a copy of this repository at HEAD:
#   1. the board install of docs/boards.md: python3 -m venv --system-site-packages, python -m pip install .
#      (the aarch64 wheels of ai-edge-litert, numpy and Pillow come from the package index);
#   2. the older-Pi install: tflite-runtime 2.14.0 with numpy<2, then pip install --no-deps .;
# and in each: edge-classify --json on N development scans (default 5, every 7th, so no woman's
# two breasts are read together; `all`: every scan, pairs read side by side, about an hour) with
# TFLite's builtin kernels and with its reference kernels, the versions, and a short
# `edge-bench --device rpi4`. The answers are compared with this x86 machine's for the same scans
# and kernels and written to reports/boards/arm64-emulated.json. Exit 0 when the kernels the Pi
# device configs ask for give x86's answers in both environments, 1 when they do not or a run
# failed, 2 when the check could not run. Wall times are emulated, not board figures.
# /sys is not bind-mounted: with the x86 host's CPU lists there, LiteRT's cpuinfo crashes under
# qemu (without it, cpuinfo warns on stderr and goes on).
#
# A maintainer's command (root, network to Debian's mirror and the package index; about 10-15
# minutes the first time, the root build included), not part of the test run.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${MIAS_EDGE_CACHE:-/var/cache/mias-edge}
ROOT=$CACHE/arm64-root
MIAS=${MIAS_DIR:-$REPO/../shared/mias}
OUT=$REPO/reports/boards/arm64-emulated.json
SCANS=5
RUNS=20
REBUILD=0
while [ $# -gt 0 ]; do
    case $1 in
        --scans) SCANS=$2; shift 2 ;;
        --runs) RUNS=$2; shift 2 ;;
        --rebuild) REBUILD=1; shift ;;
        --out) OUT=$2; shift 2 ;;
        -h|--help) awk 'NR > 1 && !/^#/ { exit } NR > 1' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "error: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done

fail() { echo "error: $*" >&2; exit 2; }
now() { date +%s.%N; }
since() { python3 -c "import sys; print(round(float(sys.argv[2]) - float(sys.argv[1]), 1))" "$1" "$(now)"; }
log() { echo "[arm64-check $(date -u +%H:%M:%S)] $*" >&2; }

[ "$(id -u)" = 0 ] || fail "run as root (mmdebstrap, chroot and mounts need it)"
[ -d "$MIAS" ] || fail "no MIAS scans at $MIAS (set MIAS_DIR)"
command -v python >/dev/null || fail "no 'python' on PATH: run from the project's environment (pip install -e .)"
python -c "import edge" 2>/dev/null || fail "this Python cannot import edge: pip install -e . first"
mkdir -p "$CACHE"
exec 9>"$CACHE/arm64-check.lock"
flock -n 9 || fail "another arm64 check is running ($CACHE/arm64-check.lock)"
START=$(now)

# --- tools and binfmt ---------------------------------------------------------------------
if ! command -v mmdebstrap >/dev/null || [ ! -e /usr/bin/qemu-aarch64-static ] || ! command -v update-binfmts >/dev/null; then
    log "installing mmdebstrap, qemu-user-static, binfmt-support from Debian"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mmdebstrap qemu-user-static binfmt-support >/dev/null \
        || fail "cannot install mmdebstrap qemu-user-static binfmt-support"
fi
mountpoint -q /proc/sys/fs/binfmt_misc || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc \
    || fail "cannot mount binfmt_misc"
update-binfmts --enable qemu-aarch64 2>/dev/null || true
[ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] || fail "qemu-aarch64 is not registered with binfmt_misc"

# --- the root, built once -----------------------------------------------------------------
BUILD_SECONDS=None
if [ "$REBUILD" = 1 ] || [ ! -e "$ROOT/.mias-edge-root" ]; then
    log "building the arm64 bookworm root in $ROOT (a few minutes)"
    t=$(now)
    rm -rf "$ROOT.tmp" "$ROOT"
    mmdebstrap --quiet --architectures=arm64 --variant=apt --include=python3,python3-venv,ca-certificates \
        bookworm "$ROOT.tmp" >&2 || fail "mmdebstrap failed"
    BUILD_SECONDS=$(since "$t")
    { echo "mmdebstrap --architectures=arm64 --variant=apt --include=python3,python3-venv,ca-certificates bookworm"
      echo "built $(date -u +%Y-%m-%dT%H:%M:%SZ) in $BUILD_SECONDS s"; } > "$ROOT.tmp/.mias-edge-root"
    mv "$ROOT.tmp" "$ROOT"
fi

# --- what pip and DNS need inside, and the mounts -----------------------------------------
for config in /etc/pip.conf /etc/xdg/pip "$HOME/.config/pip" "$HOME/.pip"; do
    if [ -e "$config" ]; then
        mkdir -p "$ROOT$(dirname "$config")"
        rm -rf "${ROOT:?}$config"
        cp -a "$config" "$ROOT$config"
    fi
done
for file in /etc/ssl/certs/ca-certificates.crt /etc/resolv.conf /etc/hosts; do
    [ -e "$file" ] && mkdir -p "$ROOT$(dirname "$file")" && cp -L "$file" "$ROOT$file"
done
WORK=$(mktemp -d /tmp/arm64-check.XXXXXX)
INSIDE=/opt/mias-check  # in the root: the source copy, the scans, the venvs, the outputs
cleanup() {
    for mount in "$ROOT/dev/pts" "$ROOT/dev" "$ROOT/proc"; do
        mountpoint -q "$mount" && umount -l "$mount"
    done
    rm -rf "${ROOT:?}$INSIDE/scans" "$ROOT$INSIDE.reference.toml" "$WORK"  # never leave copies of the scans behind
}
trap cleanup EXIT
mountpoint -q "$ROOT/proc" || mount -t proc proc "$ROOT/proc"
mountpoint -q "$ROOT/dev" || mount --bind /dev "$ROOT/dev"
mountpoint -q "$ROOT/dev/pts" || mount --bind /dev/pts "$ROOT/dev/pts"
printf 'description = "the device configs with TFLite reference kernels"\nthreads = 2\nkernels = "reference"\n' > "$ROOT$INSIDE.reference.toml"

# Host pip/TLS/proxy settings go in (PIP_FIND_LINKS points at x86 wheels: pip only warns).
ENVIRONMENT=(PATH=/usr/local/bin:/usr/bin:/bin HOME=/root LANG=C.UTF-8 PYTHONDONTWRITEBYTECODE=1)
while IFS= read -r line; do ENVIRONMENT+=("$line"); done < <(env | grep -E '^(PIP_|SSL_CERT_|REQUESTS_CA_BUNDLE=|https?_proxy=|HTTPS?_PROXY=|no_proxy=|NO_PROXY=)' || true)
inside() { chroot "$ROOT" /usr/bin/env -i "${ENVIRONMENT[@]}" /bin/bash -c "$1"; }
inside "uname -m | grep -qx aarch64" || fail "the root does not run as aarch64 (binfmt/qemu)"

# --- the source at HEAD and the scans -----------------------------------------------------
COMMIT=$(git -C "$REPO" rev-parse HEAD)
rm -rf "${ROOT:?}$INSIDE" && mkdir -p "$ROOT$INSIDE/src" "$ROOT$INSIDE/scans" "$ROOT$INSIDE/out"
git -C "$REPO" archive HEAD | tar -x -C "$ROOT$INSIDE/src"
mapfile -t PICKED < <(ls "$MIAS" | grep -E '^mdb[0-9]+\.(png|pgm)$' | sort | awk -v n="$SCANS" 'n == "all" || (NR % 7 == 1 && c < n) { print; c++ }')
[ "${#PICKED[@]}" -gt 0 ] || fail "no mdbNNN scans in $MIAS"
for scan in "${PICKED[@]}"; do cp "$MIAS/$scan" "$ROOT$INSIDE/scans/"; done
SCAN_ARGS=$(printf "$INSIDE/scans/%s " "${PICKED[@]}")
log "${#PICKED[@]} scans: ${PICKED[*]}"

# --- x86 answers: the same commit, this machine's runtime ---------------------------------
mkdir -p "$WORK/x86src" && git -C "$REPO" archive HEAD | tar -x -C "$WORK/x86src"
HOST_SCANS=()
for scan in "${PICKED[@]}"; do HOST_SCANS+=("$ROOT$INSIDE/scans/$scan"); done
CLASSIFY='import sys; sys.argv[0] = "edge-classify"; from edge.cli.classify import main; sys.exit(main())'
for kernels in builtin reference; do
    options=(); [ "$kernels" = reference ] && options=(--config "$ROOT$INSIDE.reference.toml")
    (cd "$WORK" && PYTHONPATH="$WORK/x86src" python -c "$CLASSIFY" --json "${options[@]}" "${HOST_SCANS[@]}" > "$WORK/x86.$kernels.jsonl") \
        || fail "x86 edge-classify ($kernels kernels) failed"
done
X86_RUNTIME=$(cd "$WORK" && PYTHONPATH="$WORK/x86src" python -c 'from edge.inference.runtime import runtime_version; import numpy; print(runtime_version() + ", numpy " + numpy.__version__)')

IDENTITY='import json, platform, sys
from importlib import metadata
import numpy, PIL
from edge.inference.runtime import runtime_version
print(json.dumps({"runtime": runtime_version(), "mias_edge": metadata.version("mias-edge"), "numpy": numpy.__version__,
                  "pillow": PIL.__version__, "python": platform.python_version(), "machine": platform.machine(),
                  "debian": open("/etc/debian_version").read().strip(), "edge_classify_version": sys.argv[1] or None}))'

declare -A INSTALLS
INSTALLS[litert]="python3 -m venv --system-site-packages VENV && VENV/bin/python -m pip install ."
# The older-Pi install: the dependencies of pyproject.toml with tflite-runtime 2.14 in place of
# ai-edge-litert and numpy<2 (tflite-runtime 2.14 is built against numpy 1), then the package alone.
OLD_DEPS=$(python3 - "$REPO/pyproject.toml" <<'EOF'
import re, sys, tomllib
deps = tomllib.load(open(sys.argv[1], "rb"))["project"]["dependencies"]
names = [re.split(r"[<>=!;\[ ]", d, maxsplit=1)[0] for d in deps]
keep = [f"'{d.split(';')[0].strip()}'" for d, n in zip(deps, names) if n not in ("ai-edge-litert", "numpy")]
print(" ".join(["'numpy<2'", "'tflite-runtime==2.14.0'", *keep]))
EOF
)
INSTALLS[tflite]="python3 -m venv --system-site-packages VENV && VENV/bin/python -m pip install $OLD_DEPS && VENV/bin/python -m pip install --no-deps ."

for name in litert tflite; do
    venv=$INSIDE/venv-$name
    install=${INSTALLS[$name]//VENV/$venv}
    log "$name: $install"
    t=$(now)
    inside "cd $INSIDE/src && $install" > "$WORK/$name.install.log" 2>&1 \
        || { tail -20 "$WORK/$name.install.log" >&2; fail "$name: the install failed inside the root"; }
    install_seconds=$(since "$t")

    for kernels in builtin reference; do
        options=""; [ "$kernels" = reference ] && options="--config $INSIDE.reference.toml"
        log "$name: edge-classify --json $options on ${#PICKED[@]} scans ($kernels kernels)"
        t=$(now)
        rc=0
        inside "cd $INSIDE/out && $venv/bin/edge-classify --json $options $SCAN_ARGS" \
            > "$WORK/$name.$kernels.jsonl" 2> "$WORK/$name.$kernels.err" || rc=$?
        [ "$rc" = 0 ] || { tail -3 "$WORK/$name.$kernels.err" >&2; log "$name: edge-classify ($kernels) exited $rc"; }
        printf '{"exit_status": %s, "wall_seconds": %s, "stderr_tail": %s}\n' "$rc" "$(since "$t")" \
            "$(tail -2 "$WORK/$name.$kernels.err" | python3 -c 'import json, sys; print(json.dumps(sys.stdin.read().strip()))')" \
            > "$WORK/$name.$kernels.run.json"
    done

    version=$(inside "$venv/bin/edge-classify --version 2>/dev/null" || true)
    inside "cd $INSIDE/out && $venv/bin/python -c '$IDENTITY' $(printf %q "$version")" > "$WORK/$name.identity.json" \
        || fail "$name: cannot read the versions inside the root"

    log "$name: edge-bench --runs $RUNS"
    t=$(now)
    inside "cd $INSIDE/out && $venv/bin/edge-bench --json --device rpi4 --runs $RUNS --warmup 2 --cold-runs 1 --image $INSIDE/scans/${PICKED[0]}" \
        > "$WORK/$name.bench.json" 2> "$WORK/$name.bench.err" \
        || { tail -3 "$WORK/$name.bench.err" >&2; rm -f "$WORK/$name.bench.json"; log "$name: edge-bench failed"; }
    bench_seconds=$(since "$t")
    printf '{"install": %s, "bench": %s, "bench_stderr_tail": %s}\n' "$install_seconds" "$bench_seconds" \
        "$(tail -2 "$WORK/$name.bench.err" | python3 -c 'import json, sys; print(json.dumps(sys.stdin.read().strip()))')" \
        > "$WORK/$name.times.json"
done

python3 - "$WORK/run.json" <<EOF
import json, os, platform, sys, time
from pathlib import Path
cpu = next((l.split(":", 1)[1].strip() for l in Path("/proc/cpuinfo").read_text().splitlines() if l.startswith("model name")), "")
json.dump({
    "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    "commit": "$COMMIT",
    "x86": "$X86_RUNTIME",
    "root": {"suite": "bookworm", "architecture": "arm64", "built_by": open("$ROOT/.mias-edge-root").read().splitlines()[0],
             "built": (open("$ROOT/.mias-edge-root").read().splitlines()[1:] or ["unknown"])[0], "cached": $BUILD_SECONDS is None,
             "emulator": "qemu-user-static (binfmt_misc)"},
    "host": {"cpu": cpu, "cores": os.cpu_count(), "machine": platform.machine(), "load_average_end": [round(x, 2) for x in os.getloadavg()]},
    "installs": {"litert": """${INSTALLS[litert]//VENV/venv}""", "tflite": """${INSTALLS[tflite]//VENV/venv}"""},
    "wall_seconds": {"root_build": $BUILD_SECONDS, "whole_check": $(since "$START")},
}, open(sys.argv[1], "w"), indent=2)
EOF
python3 "$REPO/scripts/arm64_report.py" "$WORK" --out "$OUT"
