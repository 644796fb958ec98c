#!/usr/bin/env bash
# Install Therapy Timer for the current user, from the unpacked Linux tarball (no root needed):
#   the app folder          -> ~/.local/opt/therapy-timer
#   menu entry              -> ~/.local/share/applications/org.therapytimer.TherapyTimer.desktop
#   icons                   -> ~/.local/share/icons/hicolor/<size>/apps
#   AppStream metainfo      -> ~/.local/share/metainfo
#   `therapy-timer` command -> ~/.local/bin (a symlink; skipped if something else is there)
# Run it again to upgrade. `install.sh --uninstall` removes all of it but never your data.
set -euo pipefail

usage() {
    cat <<EOF
Usage: $0 [--uninstall]
Installs Therapy Timer into your home folder and your desktop's application menu.
  --uninstall   remove the app, menu entry, icons and command; your records are kept
                in $data_dir
EOF
}

app_id="org.therapytimer.TherapyTimer"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
: "${HOME:?HOME is not set}"
data_home="${XDG_DATA_HOME:-$HOME/.local/share}"
prefix="$HOME/.local/opt/therapy-timer"
bin_link="$HOME/.local/bin/therapy-timer"
apps_dir="$data_home/applications"
icons_dir="$data_home/icons/hicolor"
metainfo_dir="$data_home/metainfo"
desktop_file="$apps_dir/$app_id.desktop"
# The app's data folder, found as the app finds it (therapy_timer/paths.py: the environment
# override, else platformdirs' user data folder, which on Linux follows XDG_DATA_HOME).
data_dir="${THERAPY_TIMER_DATA_DIR:-$data_home/therapy-timer}"

die() { printf 'error: %s\n' "$*" >&2; exit 1; }

refresh_menus() {
    if command -v update-desktop-database >/dev/null; then
        update-desktop-database -q "$apps_dir" 2>/dev/null || true
    fi
    # Only refresh an icon cache that already exists: creating one would hide icons that other
    # programs later install without updating it.
    if [ -f "$icons_dir/icon-theme.cache" ] && command -v gtk-update-icon-cache >/dev/null; then
        gtk-update-icon-cache -q -t -f "$icons_dir" 2>/dev/null || true
    fi
    if [ -d "$icons_dir" ]; then touch "$icons_dir"; fi
}

uninstall() {
    rm -rf "$prefix" "$prefix.new" "$prefix.old"
    rm -f "$desktop_file" "$metainfo_dir/$app_id.metainfo.xml"
    rm -f "$icons_dir"/*/apps/"$app_id".png "$icons_dir"/*/apps/"$app_id".svg
    if [ -L "$bin_link" ] && [ "$(readlink "$bin_link")" = "$prefix/therapy-timer" ]; then
        rm -f "$bin_link"
    fi
    refresh_menus
    echo "Therapy Timer removed."
    if [ -d "$data_dir" ]; then
        echo "Your records were kept in $data_dir"
        echo "(the database, its daily backups and the clinic's code file). To remove them too,"
        echo "copy any backup you must keep, then delete that folder."
    else
        echo "No records were found in $data_dir (the data folder); nothing else to remove."
    fi
}

install_app() {
    [ -x "$here/therapy-timer/therapy-timer" ] \
        || die "run this from the unpacked therapy-timer tarball (no therapy-timer/ folder next to it)"

    # Copy beside the old install, then swap, so an interrupted upgrade leaves a working copy.
    mkdir -p "$(dirname "$prefix")"
    rm -rf "$prefix.new" "$prefix.old"
    cp -a "$here/therapy-timer" "$prefix.new"
    if [ -e "$prefix" ]; then mv "$prefix" "$prefix.old"; fi
    mv "$prefix.new" "$prefix"
    rm -rf "$prefix.old"

    local icon size_dir
    for icon in "$here"/share/icons/hicolor/*/apps/"$app_id".*; do
        size_dir="$(basename "$(dirname "$(dirname "$icon")")")"
        install -D -m 0644 "$icon" "$icons_dir/$size_dir/apps/$(basename "$icon")"
    done
    install -D -m 0644 "$here/share/metainfo/$app_id.metainfo.xml" \
        "$metainfo_dir/$app_id.metainfo.xml"

    local gui="$prefix/therapy-timer-gui"
    if [ -x "$gui" ]; then
        # Exec takes a quoted path (spaces are fine); these characters would need escaping.
        case "$gui" in
            *[\"\`\$\\%]*) die "cannot write a menu entry for a path containing \" \` \$ \\ or %: $gui" ;;
        esac
        mkdir -p "$apps_dir"
        local line
        while IFS= read -r line || [ -n "$line" ]; do
            case "$line" in
                Exec=*) printf 'Exec="%s"\nTryExec=%s\n' "$gui" "$gui" ;;
                TryExec=*) ;;
                *) printf '%s\n' "$line" ;;
            esac
        done <"$here/share/applications/$app_id.desktop" >"$desktop_file.tmp"
        mv -f "$desktop_file.tmp" "$desktop_file"
        chmod 0644 "$desktop_file"
    else
        echo "warning: this bundle has no therapy-timer-gui; no menu entry installed" >&2
    fi

    mkdir -p "$(dirname "$bin_link")"
    if [ ! -e "$bin_link" ] || [ -L "$bin_link" ]; then
        ln -sfn "$prefix/therapy-timer" "$bin_link"
    else
        echo "note: $bin_link exists and is not ours; left it alone" >&2
    fi

    refresh_menus
    echo "Therapy Timer $("$prefix/therapy-timer" --version 2>/dev/null | awk '{print $NF}') installed in $prefix"
    if [ -x "$gui" ]; then echo "Start it from your application menu (Office), or run $gui"; fi
    case ":$PATH:" in
        *":$(dirname "$bin_link"):"*) ;;
        *) echo "To use the therapy-timer command, add $(dirname "$bin_link") to your PATH." ;;
    esac
}

case "${1:-}" in
    "") install_app ;;
    --uninstall) uninstall ;;
    -h | --help) usage ;;
    *) usage >&2; exit 2 ;;
esac
