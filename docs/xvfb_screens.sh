#!/usr/bin/env bash
# Whole-screen shots of the real app on a 1024x600 screen at the system's 125% font scale, under
# Xvfb with a window manager (openbox): what a small tablet shows, title bars and all, which the
# offscreen grabs of docs/make_screenshots.py cannot. Drives the window with xdotool keys and
# saves docs/screenshots/xvfb-{main,main-scrolled,summary,corrections,day-view}.png.
#
# Needs (Debian): xvfb xauth openbox xdotool imagemagick and the xcb libraries of
# shared/machine-notes.md (libxcb-cursor0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1
# libxcb-render-util0 libxcb-shape0 libxkbcommon-x11-0). Usage: docs/xvfb_screens.sh [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-docs/screenshots}
mkdir -p "$out"
app=.venv/bin/therapy-timer
display=:${XVFB_DISPLAY:-99}
work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# Two patients in the caseload, started from the command line as a foot pedal would.
data="$work/data"
"$app" --data-dir "$data" timer start 97110 --patient MRN100 --clinician "Ann Lee" --role PT >/dev/null
"$app" --data-dir "$data" timer start 97010 --patient MRN100 >/dev/null
"$app" --data-dir "$data" timer start 97140 --patient MRN200 --clinician "Ann Lee" --role PT >/dev/null

Xvfb "$display" -screen 0 1024x600x24 -nolisten tcp >"$work/xvfb.log" 2>&1 &
pids+=($!)
export DISPLAY=$display
for _ in $(seq 50); do xdotool getdisplaygeometry >/dev/null 2>&1 && break; sleep 0.1; done
openbox >"$work/openbox.log" 2>&1 &
pids+=($!)
sleep 1

# 125% font scale as a desktop sets it: 120 dpi fonts, widgets sized from their text.
QT_QPA_PLATFORM=xcb QT_FONT_DPI=120 "$app" --data-dir "$data" >"$work/app.log" 2>&1 &
pids+=($!)
window=$(xdotool search --sync --name "^Therapy Timer" | head -1)
sleep 2

shot() {  # NAME: the whole screen as it is now
    import -window root "$out/xvfb-$1.png"
    echo "saved $out/xvfb-$1.png"
}
key() {  # KEYS: typed into the active window
    xdotool key --clearmodifiers "$@"
    sleep 1.5
}

xdotool windowactivate --sync "$window" 2>/dev/null || true
shot main
xdotool mousemove 1003 300 click --repeat 25 --delay 40 5  # wheel on the scroll bar: untimed services
xdotool mousemove 500 590
sleep 1
shot main-scrolled
key ctrl+e                      # End session: the summary, window-modal
shot summary
key alt+c                       # Close session and copy note
key alt+m                       # Correct minutes…
shot corrections
key Escape                      # cancel the corrections
key alt+l                       # Close summary
xdotool windowactivate --sync "$window" 2>/dev/null || true
key ctrl+d                      # Day view (front desk)
shot day-view
if grep -q "Traceback" "$work/app.log"; then
    cat "$work/app.log" >&2
    exit 1
fi
