#!/usr/bin/env bash
# Build the Linux bundle (packaging/build-linux.sh), then run the BUILT executables offscreen
# with packaging/check-bundle.sh:
#   therapy-timer --version
#   therapy-timer units --request <file> --json      (skipped only while the command is not written)
#   therapy-timer --smoke-test                       (required once therapy_timer/gui exists)
#   therapy-timer-gui starts and stays up             (its own analysis, so its own missing modules)
# and install.sh into a throwaway HOME (install, re-install, uninstall). Validates the .desktop file
# and the AppStream metainfo. Exits non-zero if anything fails; prints the bundle size and build
# time. Nothing touches the user's data, menus or caches: all of it happens under a temp folder.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
venv="${BUILD_VENV:-$here/build/venv}"
export BUILD_VENV="$venv"
app_id="org.therapytimer.TherapyTimer"

# desktop-file-validate; build-linux.sh installs what building and running Qt need.
if ! command -v desktop-file-validate >/dev/null && command -v apt-get >/dev/null; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "==> installing desktop-file-utils" >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
        desktop-file-utils >/dev/null
fi

tmp="$(mktemp -d "${TMPDIR:-/tmp}/therapy-timer-smoke.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
# Keep every write of the built app inside $tmp (data, Qt settings, fontconfig cache).
export THERAPY_TIMER_DATA_DIR="$tmp/data"
export XDG_CONFIG_HOME="$tmp/config" XDG_CACHE_HOME="$tmp/cache" XDG_STATE_HOME="$tmp/state"
export XDG_DATA_HOME="$tmp/share" XDG_RUNTIME_DIR="$tmp/runtime"
mkdir -p "$XDG_RUNTIME_DIR" && chmod 0700 "$XDG_RUNTIME_DIR"
export QT_QPA_PLATFORM=offscreen

passed=() failed=() missing=()
pass() { passed+=("$1"); printf 'PASS     %s\n' "$1"; }
fail() {
    failed+=("$1")
    printf 'FAIL     %s\n' "$1"
    [ -z "${2:-}" ] || printf '%s\n' "$2" | sed 's/^/         | /'
}

# ---- build -------------------------------------------------------------------------------------
start=$SECONDS
bash "$here/build-linux.sh"
build_seconds=$((SECONDS - start))

py="$venv/bin/python"
version="$(cd "$root" && "$py" -c 'import therapy_timer; print(therapy_timer.__version__)')"
bundle="$here/dist/therapy-timer"
tarball="$here/dist/therapy-timer-$version-linux-$(uname -m).tar.gz"
echo
echo "== smoke test of the built bundle ($bundle)"

set +e
CHECK_PYTHON="$py" bash "$here/check-bundle.sh" "$bundle" | tee "$tmp/check.log"
check_status=${PIPESTATUS[0]}
set -e
while IFS= read -r line; do
    missing+=("${line#MISSING  }")
done < <(grep '^MISSING' "$tmp/check.log" || true)
if [ "$check_status" -eq 0 ]; then
    pass "built executables (packaging/check-bundle.sh)"
else
    fail "built executables (packaging/check-bundle.sh, see above)"
fi

# ---- metadata ----------------------------------------------------------------------------------
if out="$(desktop-file-validate "$root/resources/$app_id.desktop" 2>&1)"; then
    pass "desktop-file-validate resources/$app_id.desktop"
else
    fail "desktop-file-validate resources/$app_id.desktop" "$out"
fi
if command -v appstreamcli >/dev/null; then
    if out="$(appstreamcli validate --no-net "$root/resources/$app_id.metainfo.xml" 2>&1)"; then
        pass "appstreamcli validate resources/$app_id.metainfo.xml"
    else
        fail "appstreamcli validate resources/$app_id.metainfo.xml" "$out"
    fi
else
    echo "note: appstreamcli not installed; metainfo not validated"
fi

# ---- install.sh into a throwaway HOME ----------------------------------------------------------
fake_home="$tmp/home"
mkdir -p "$fake_home" "$tmp/unpack"
tar -xzf "$tarball" -C "$tmp/unpack"
unpacked="$(find "$tmp/unpack" -mindepth 1 -maxdepth 1 -type d)"
in_home() { env -u XDG_DATA_HOME HOME="$fake_home" PATH="$PATH" "$@"; }
install_errors=()
if ! out="$(in_home bash "$unpacked/install.sh" 2>&1 && in_home bash "$unpacked/install.sh" 2>&1)"; then
    install_errors+=("install.sh failed: $out")
fi
share="$fake_home/.local/share"
expect=("$fake_home/.local/opt/therapy-timer/therapy-timer" "$share/metainfo/$app_id.metainfo.xml"
        "$share/icons/hicolor/scalable/apps/$app_id.svg" "$fake_home/.local/bin/therapy-timer")
for size in 16 32 48 64 128 256; do expect+=("$share/icons/hicolor/${size}x${size}/apps/$app_id.png"); done
[ ! -x "$bundle/therapy-timer-gui" ] || expect+=("$share/applications/$app_id.desktop")
for file in "${expect[@]}"; do
    [ -e "$file" ] || install_errors+=("not installed: ${file#"$fake_home"/}")
done
if [ -e "$share/applications/$app_id.desktop" ]; then
    grep -qx "Exec=\"$fake_home/.local/opt/therapy-timer/therapy-timer-gui\"" \
        "$share/applications/$app_id.desktop" || install_errors+=("Exec= does not point at the install")
    out="$(desktop-file-validate "$share/applications/$app_id.desktop" 2>&1)" \
        || install_errors+=("installed .desktop invalid: $out")
fi
out="$(in_home "$fake_home/.local/bin/therapy-timer" --version 2>&1)" && [[ "$out" == *"$version"* ]] \
    || install_errors+=("installed therapy-timer --version: $out")
if ! out="$(in_home bash "$unpacked/install.sh" --uninstall 2>&1)"; then
    install_errors+=("install.sh --uninstall failed: $out")
fi
left="$(cd "$fake_home" && find . -name "$app_id*" -o -path ./.local/opt/therapy-timer \
    -o -path ./.local/bin/therapy-timer)"
[ -z "$left" ] || install_errors+=("left behind by --uninstall: $left")
if [ ${#install_errors[@]} -eq 0 ]; then
    pass "install.sh (twice) and --uninstall in a throwaway HOME"
else
    fail "install.sh in a throwaway HOME" "$(printf '%s\n' "${install_errors[@]}")"
fi

# ---- summary -----------------------------------------------------------------------------------
echo
echo "== bundle"
echo "build time:   ${build_seconds}s (build-linux.sh, including venv/pip checks)"
echo "bundle size:  $(du -sh "$bundle" | cut -f1)  $bundle"
echo "tarball size: $(du -sh "$tarball" | cut -f1)  $tarball"
echo "passed: ${#passed[@]}  failed: ${#failed[@]}  missing: ${#missing[@]}"
for item in "${missing[@]}"; do echo "  missing: $item"; done
for item in "${failed[@]}"; do echo "  failed:  $item"; done
[ ${#failed[@]} -eq 0 ]
