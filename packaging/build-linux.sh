#!/usr/bin/env bash
# Build the Linux bundle: a PyInstaller folder with both executables, packed with the .desktop file,
# icons, AppStream metainfo and install.sh into
#   packaging/dist/therapy-timer-<version>-linux-<arch>.tar.gz
# Uses (and creates when missing) a build venv in packaging/build/venv; override with BUILD_VENV.
# PYTHON picks the interpreter for a new venv (default python3, 3.11+). Safe to re-run.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
build_dir="$here/build"
dist_dir="$here/dist"
venv="${BUILD_VENV:-$build_dir/venv}"
app_id="org.therapytimer.TherapyTimer"
pyinstaller_req="pyinstaller>=6.10,<7"

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# System packages: binutils (PyInstaller reads ELF files with objdump), and the libraries Qt's xcb
# and offscreen platforms load -- present at build time, PyInstaller bundles them, so the folder
# also runs on thin clients that lack e.g. libxcb-cursor0 (libGL/libEGL/libxcb stay the system's).
apt_packages=(binutils libegl1 libgl1 libglib2.0-0 libfontconfig1 libfreetype6 libdbus-1-3 libx11-6
              libxkbcommon0 libxkbcommon-x11-0 libxcb-cursor0 libxcb-icccm4 libxcb-image0
              libxcb-keysyms1 libxcb-render-util0 libxcb-shape0 fonts-dejavu-core)
ensure_apt_packages() {
    command -v dpkg-query >/dev/null && command -v apt-get >/dev/null || return 0
    local missing=() pkg
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
            || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    local sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null || die "missing packages (install them as root): ${missing[*]}"
        sudo="sudo"
    fi
    log "installing system packages: ${missing[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
}
ensure_apt_packages "${apt_packages[@]}"
command -v objdump >/dev/null || die "objdump not found: install binutils (PyInstaller needs it)"

# The build venv: the project's runtime dependencies (read from pyproject.toml) and PyInstaller.
# The app itself is analysed from this checkout (the spec's pathex), so it is never stale.
python="${PYTHON:-python3}"
if ! "$venv/bin/python" -c 'import sys; assert sys.version_info >= (3, 11)' 2>/dev/null; then
    "$python" -c 'import sys; assert sys.version_info >= (3, 11)' 2>/dev/null \
        || die "$python is missing or older than Python 3.11 (set PYTHON=...)"
    log "creating build venv $venv"
    rm -rf "$venv"
    "$python" -m venv "$venv"
fi
mapfile -t deps < <("$venv/bin/python" - "$root/pyproject.toml" <<'EOF'
import sys, tomllib
with open(sys.argv[1], "rb") as f:
    print("\n".join(tomllib.load(f)["project"]["dependencies"]))
EOF
)
log "installing build requirements: ${deps[*]} $pyinstaller_req"
"$venv/bin/python" -m pip install -q --disable-pip-version-check "${deps[@]}" "$pyinstaller_req"

version="$(cd "$root" && "$venv/bin/python" -c 'import therapy_timer; print(therapy_timer.__version__)')"
arch="$(uname -m)"
name="therapy-timer-$version-linux-$arch"

# One version string: the newest AppStream release must be the package's version.
metainfo="$root/resources/$app_id.metainfo.xml"
meta_version="$("$venv/bin/python" - "$metainfo" <<'EOF'
import sys
import xml.etree.ElementTree as ET
release = ET.parse(sys.argv[1]).getroot().find("releases/release")
print("" if release is None else release.get("version", ""))
EOF
)"
[ "$meta_version" = "$version" ] || die "newest <release> in $metainfo is '$meta_version' but \
therapy_timer.__version__ is '$version': add a <release version=\"$version\" date=\"...\"> entry"

log "building therapy-timer $version with PyInstaller"
start=$SECONDS
"$venv/bin/pyinstaller" --noconfirm --log-level WARN \
    --distpath "$dist_dir" --workpath "$build_dir/pyinstaller" "$here/therapy-timer.spec"
bundle="$dist_dir/therapy-timer"
[ -x "$bundle/therapy-timer" ] || die "PyInstaller did not produce $bundle/therapy-timer"

# The tarball: the folder plus what install.sh puts into the user's menu, in XDG layout.
stage="$build_dir/stage/$name"
rm -rf "$build_dir/stage"
mkdir -p "$stage/share/applications" "$stage/share/metainfo" "$stage/share/icons/hicolor/scalable/apps"
cp -a "$bundle" "$stage/therapy-timer"
cp "$root/resources/$app_id.desktop" "$stage/share/applications/"
cp "$metainfo" "$stage/share/metainfo/"
cp "$root/resources/icons/$app_id.svg" "$stage/share/icons/hicolor/scalable/apps/"
for png in "$root/resources/icons/$app_id"-*.png; do
    size="${png##*-}"
    size="${size%.png}"
    mkdir -p "$stage/share/icons/hicolor/${size}x${size}/apps"
    cp "$png" "$stage/share/icons/hicolor/${size}x${size}/apps/$app_id.png"
done
install -m 0755 "$here/install.sh" "$stage/install.sh"
tarball="$dist_dir/$name.tar.gz"
tar -czf "$tarball.tmp" -C "$build_dir/stage" "$name"
mv -f "$tarball.tmp" "$tarball"
elapsed=$((SECONDS - start))

log "bundle:  $bundle ($(du -sh "$bundle" | cut -f1))"
log "tarball: $tarball ($(du -sh "$tarball" | cut -f1))"
log "PyInstaller + packing took ${elapsed}s"
