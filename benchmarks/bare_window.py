"""The baseline for bench_gui: a bare QMainWindow with N push buttons, in a process of its own.

It imports nothing but what the window needs, and detects its first paint exactly as the app's
``--smoke-test`` does (an event filter on the window's Paint, then a zero timer so the paint is
flushed); it prints ``{"painted_at": time.time()}`` so the parent can time spawn to first paint.
"""

import json
import sys
import time

from PySide6.QtCore import QEvent, QObject, QTimer
from PySide6.QtWidgets import QApplication, QGridLayout, QMainWindow, QPushButton, QWidget

app = QApplication(sys.argv[:1])
window = QMainWindow()
central = QWidget()
grid = QGridLayout(central)
for i in range(int(sys.argv[1])):
    grid.addWidget(QPushButton(f"Button {i}"), i // 6, i % 6)
window.setCentralWidget(central)
painted: list[float] = []


class FirstPaint(QObject):
    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.Paint and not painted:
            painted.append(0.0)

            def done() -> None:
                painted[0] = time.time()
                app.exit(0)

            QTimer.singleShot(0, done)
        return False


watcher = FirstPaint()
window.installEventFilter(watcher)
window.show()
app.exec()
print(json.dumps({"painted_at": painted[0]}), flush=True)
