"""Render the application icon SVG to the committed PNG sizes, a Windows .ico and a macOS iconset.

Run from anywhere with the project's venv:  python packaging/render_icons.py
Qt draws offscreen, so no display is needed. The outputs are committed: re-run after editing the
SVG.
"""

from __future__ import annotations

import argparse
import os
import struct
import sys
from collections.abc import Sequence
from pathlib import Path

# Before Qt loads: headless machines have neither a display nor a window system.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

# Packaging tooling, not app code: the Qt-free-core rule (TID251) is about therapy_timer/ only.
from PySide6.QtCore import QBuffer, QByteArray, QIODevice, Qt
from PySide6.QtGui import QGuiApplication, QImage, QImageWriter, QPainter
from PySide6.QtSvg import QSvgRenderer

APP_ID = "org.therapytimer.TherapyTimer"  # same as therapy_timer.paths.APP_ID
ICONS_DIR = Path(__file__).resolve().parent.parent / "resources" / "icons"
SVG_PATH = ICONS_DIR / f"{APP_ID}.svg"

PNG_SIZES = (16, 32, 48, 64, 128, 256)
# The sizes Windows asks for (taskbar, Explorer views, installer); 256 is stored as PNG.
ICO_SIZES = (16, 24, 32, 48, 64, 256)
# Apple's iconset naming for `iconutil -c icns` (done on macOS CI, where iconutil exists).
ICONSET_SIZES = (16, 32, 128, 256, 512)


def render(renderer: QSvgRenderer, size: int) -> QImage:
    """Draw the SVG into a transparent square image of ``size`` pixels."""
    image = QImage(size, size, QImage.Format.Format_ARGB32_Premultiplied)
    image.fill(Qt.GlobalColor.transparent)
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
    renderer.render(painter)
    painter.end()
    return image


def encode(image: QImage, fmt: str) -> bytes:
    """The image encoded by Qt's writer for ``fmt`` (e.g. "png", "ico")."""
    buffer = QBuffer()
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    writer = QImageWriter(buffer, QByteArray(fmt.encode()))
    if not writer.write(image):
        raise RuntimeError(f"Qt could not write {fmt}: {writer.errorString()}")
    return bytes(buffer.data().data())


def ico_entry(image: QImage) -> tuple[bytes, bytes]:
    """One ICO directory entry (offset still zero) and its image data.

    Qt's ICO writer stores a single image per file, so each size is written on its own and its
    entry is lifted out; 256 px goes in as PNG, which Windows has read since Vista.
    """
    size = image.width()
    if size >= 256:
        data = encode(image, "png")
        entry = struct.pack("<BBBBHHII", 0, 0, 0, 0, 1, 32, len(data), 0)
        return entry, data
    single = encode(image, "ico")
    reserved, kind, count = struct.unpack_from("<HHH", single, 0)
    if (reserved, kind, count) != (0, 1, 1):
        raise RuntimeError(f"unexpected ICO header from Qt for {size} px")
    fields = list(struct.unpack_from("<BBBBHHII", single, 6))
    length, offset = fields[6], fields[7]
    fields[7] = 0
    return struct.pack("<BBBBHHII", *fields), single[offset : offset + length]


def build_ico(renderer: QSvgRenderer, sizes: Sequence[int]) -> bytes:
    """A multi-size Windows icon file."""
    entries = [ico_entry(render(renderer, size)) for size in sizes]
    header = struct.pack("<HHH", 0, 1, len(entries))
    offset = len(header) + 16 * len(entries)
    directory = b""
    blobs = b""
    for entry, data in entries:
        fields = list(struct.unpack("<BBBBHHII", entry))
        fields[7] = offset + len(blobs)
        directory += struct.pack("<BBBBHHII", *fields)
        blobs += data
    return header + directory + blobs


def write_iconset(renderer: QSvgRenderer, folder: Path) -> list[Path]:
    """PNGs named as macOS ``iconutil`` expects: ``icon_16x16.png``, ``icon_16x16@2x.png``…"""
    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for size in ICONSET_SIZES:
        for scale, suffix in ((1, ""), (2, "@2x")):
            path = folder / f"icon_{size}x{size}{suffix}.png"
            path.write_bytes(encode(render(renderer, size * scale), "png"))
            written.append(path)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--iconset",
        type=Path,
        metavar="DIR",
        help="also write a macOS .iconset folder (turn it into .icns with `iconutil -c icns DIR`)",
    )
    args = parser.parse_args(argv)

    app = QGuiApplication.instance() or QGuiApplication(sys.argv[:1])
    renderer = QSvgRenderer(str(SVG_PATH))
    if not renderer.isValid():
        print(f"error: cannot read {SVG_PATH}", file=sys.stderr)
        return 1

    written: list[Path] = []
    for size in PNG_SIZES:
        path = ICONS_DIR / f"{APP_ID}-{size}.png"
        path.write_bytes(encode(render(renderer, size), "png"))
        written.append(path)
    ico_path = ICONS_DIR / f"{APP_ID}.ico"
    ico_path.write_bytes(build_ico(renderer, ICO_SIZES))
    written.append(ico_path)
    if args.iconset is not None:
        written.extend(write_iconset(renderer, args.iconset))

    for path in written:
        print(path)
    del app
    return 0


if __name__ == "__main__":
    sys.exit(main())
