#!/usr/bin/env bash
# Run the BUILT executables of a bundle offscreen; used by smoke-test-bundle.sh (Linux) and by the
# desktop-bundles CI workflow (Windows, macOS).
#   check-bundle.sh DIR     DIR holds therapy-timer[.exe] and therapy-timer-gui[.exe]
#                           (macOS: "Therapy Timer.app/Contents/MacOS")
# Checks: --version; `units --request FILE --json` on a 3-unit request; --smoke-test (the window,
# offscreen); therapy-timer-gui starts and stays up. What the SOURCE provides decides what is
# required: a check is reported MISSING (not failed) only while its code does not exist yet.
# Environment: CHECK_PYTHON  a Python that imports this checkout's therapy_timer (default python3)
#              CHECK_GUI_START=0  skip the therapy-timer-gui start check
# Exits 1 if any check fails. Writes nothing outside a temp folder (THERAPY_TIMER_DATA_DIR).
set -euo pipefail

[ $# -eq 1 ] || { echo "usage: $0 DIR-WITH-EXECUTABLES" >&2; exit 2; }
bin_dir="$(cd "$1" && pwd)"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
py="${CHECK_PYTHON:-python3}"
run_timeout="${SMOKE_TIMEOUT:-120}"
exe=""
[ -e "$bin_dir/therapy-timer.exe" ] && exe=".exe"
cli="$bin_dir/therapy-timer$exe"
gui="$bin_dir/therapy-timer-gui$exe"

tmp="$(mktemp -d "${TMPDIR:-/tmp}/therapy-timer-check.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
export THERAPY_TIMER_DATA_DIR="$tmp/data"
export QT_QPA_PLATFORM=offscreen

# GNU timeout when there is one (not on stock macOS, and Windows has an unrelated timeout.exe).
with_timeout=()
if timeout --version 2>/dev/null | grep -q coreutils; then with_timeout=(timeout "$run_timeout"); fi

failures=0
pass() { printf 'PASS     %s\n' "$1"; }
miss() { printf 'MISSING  %s\n' "$1"; }
fail() {
    failures=$((failures + 1))
    printf 'FAIL     %s\n' "$1"
    [ -z "${2:-}" ] || printf '%s\n' "$2" | sed 's/^/         | /'
}
run() {  # run COMMAND...: output in $out, exit status in $rc
    set +e
    # ${a[@]+"${a[@]}"}: an empty array under `set -u` in macOS's bash 3.2.
    out="$(${with_timeout[@]+"${with_timeout[@]}"} "$@" 2>&1)"
    rc=$?
    set -e
    [ "$rc" -ne 124 ] || [ ${#with_timeout[@]} -eq 0 ] || out="$out (timed out after ${run_timeout}s)"
}
source_has() {  # source_has PYTHON-EXPRESSION: True/False, evaluated against this checkout
    (cd "$root" && "$py" -c "from therapy_timer.cli import main; print($1)")
}

version="$(cd "$root" && "$py" -c 'import therapy_timer; print(therapy_timer.__version__)')"
has_units="$(source_has '"units" in main.commands')"
has_smoke_option="$(source_has 'any("--smoke-test" in p.opts for p in main.params)')"
has_gui=False
[ -f "$root/therapy_timer/gui/app.py" ] && has_gui=True

[ -x "$cli" ] || { fail "no executable $cli"; exit 1; }

run "$cli" --version
if [ "$rc" -eq 0 ] && [[ "$out" == *"$version"* ]]; then
    pass "therapy-timer --version -> $out"
else
    fail "therapy-timer --version (exit $rc, expected $version)" "$out"
fi

# 33 + 7 timed minutes = 40 -> 3 units under the CMS total-time method.
if [ "$has_units" = True ]; then
    request="$tmp/request.json"
    printf '%s\n' '{"method": "cms", "discipline": "PT", "timed": {"97110": 33, "97140": 7}}' \
        >"$request"
    run "$cli" units --request "$request" --json
    total=""
    if [ "$rc" -eq 0 ]; then
        total="$(printf '%s' "$out" | "$py" -c '
import json, sys
print(json.load(sys.stdin).get("total_timed_units"))' 2>/dev/null || true)"
    fi
    if [ "$total" = 3 ]; then
        pass "therapy-timer units --request FILE --json -> total_timed_units 3"
    else
        fail "therapy-timer units --request FILE --json (exit $rc, total_timed_units ${total:-?})" \
            "$out"
    fi
else
    miss "therapy-timer units: no 'units' command in therapy_timer/cli.py yet (skipped)"
fi

if [ "$has_gui" = True ] || [ "$has_smoke_option" = True ]; then
    run "$cli" --smoke-test
    ready=""
    if [ "$rc" -eq 0 ]; then
        ready="$(printf '%s\n' "$out" | "$py" -c '
import json, sys
for line in reversed(sys.stdin.read().splitlines()):
    try:
        data = json.loads(line)
    except ValueError:
        continue
    if isinstance(data, dict) and isinstance(data.get("ready_ms"), (int, float)):
        print(data["ready_ms"])
        break' 2>/dev/null || true)"
    fi
    if [ -n "$ready" ]; then
        pass "therapy-timer --smoke-test -> window ready in ${ready} ms"
    else
        fail "therapy-timer --smoke-test (exit $rc, expected a {\"ready_ms\": N} line)" "$out"
    fi
else
    miss "therapy-timer --smoke-test: therapy_timer/gui does not exist yet"
fi

# The windowed executable has its own analysis (and so its own missing modules): prove it starts.
if [ "$has_gui" != True ]; then
    miss "therapy-timer-gui: therapy_timer/gui/app.py does not exist yet (not built)"
elif [ ! -x "$gui" ]; then
    fail "therapy-timer-gui is missing from the bundle"
elif [ "${CHECK_GUI_START:-1}" = 0 ] || [ ${#with_timeout[@]} -eq 0 ]; then
    echo "note: therapy-timer-gui start not checked here (CHECK_GUI_START=0 or no GNU timeout)"
else
    set +e
    out="$(timeout 5 "$gui" 2>&1)"
    rc=$?
    set -e
    if [ "$rc" -eq 124 ] || [ "$rc" -eq 0 ]; then
        pass "therapy-timer-gui starts offscreen (still running after 5 s)"
    else
        fail "therapy-timer-gui exited with status $rc within 5 s" "$out"
    fi
fi

[ "$failures" -eq 0 ]
