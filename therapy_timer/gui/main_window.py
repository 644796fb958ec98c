"""The main window: layout of the thin widgets, keyboard shortcuts and all signal wiring."""

from __future__ import annotations

from collections.abc import Callable
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6 import QtCore, QtGui, QtWidgets
from PySide6.QtCore import QEvent, QObject, QTimer
from PySide6.QtGui import QCloseEvent, QGuiApplication, QIcon, QKeySequence, QResizeEvent, QShortcut
from PySide6.QtWidgets import (
    QBoxLayout,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLayout,
    QMainWindow,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from therapy_timer import __version__
from therapy_timer.explain import data_folder_text
from therapy_timer.gui import theme
from therapy_timer.gui.controller import ForgotToStop, SessionController
from therapy_timer.gui.view_state import CaseloadEntry, TileState, WindowView, format_elapsed
from therapy_timer.gui.widgets.banner import Banner
from therapy_timer.gui.widgets.caseload import CaseloadStrip
from therapy_timer.gui.widgets.furnished import FurnishedBySwitch
from therapy_timer.gui.widgets.header import SessionHeader
from therapy_timer.gui.widgets.live_strip import LiveStrip
from therapy_timer.gui.widgets.search import CodeSearch
from therapy_timer.gui.widgets.tiles import TileGrid
from therapy_timer.gui.widgets.untimed import UntimedList
from therapy_timer.model import Interrupted, RecoveryChoice

if TYPE_CHECKING:
    # Annotations only: app.py imports the day view (and its PDF writer) on first use, and
    # the summary and recovery dialogs are imported when first opened, so a start does not
    # pay for them (issue 13). So are the message boxes and the input dialog: PySide6 builds
    # a class and its enums on first use, and a QDialog's cost a start ~5-10 ms. The menus'
    # actions and the tray are made after the first paint (finish_start): QtGui.QAction and
    # QtWidgets.QSystemTrayIcon are named where they are made, for the same reason.
    from PySide6.QtGui import QAction
    from PySide6.QtWidgets import QMessageBox, QSystemTrayIcon

    from therapy_timer.gui.day_view import DayView
    from therapy_timer.gui.widgets.mini_view import MiniView
    from therapy_timer.gui.widgets.recovery_dialog import RecoveryDialog
    from therapy_timer.gui.widgets.summary_dialog import SummaryDialog

SHORTCUTS_HELP = (
    "1 to 9: start the tile with that number (the running code stops)\n"
    "Space: pause, or resume what was paused\n"
    "Ctrl+E: end the session (summary and note)\n"
    "Ctrl+C in the summary: close the session and copy the note (Copy note once closed)\n"
    "Ctrl+M: the small always-on-top view\n"
    "Ctrl+1 to Ctrl+9: show that patient of the caseload strip\n"
    "Ctrl+N: new patient (the others keep running)\n"
    "Ctrl+Shift+C: switch clinician (a new patient, the clinician's name ready to type)\n"
    "Ctrl+D: the day view (front desk)\n"
    "Ctrl+Q: quit (a running stopwatch is asked about first)"
)


MADE_AFTER_THE_FIRST_PAINT = frozenset(
    {
        "new_patient_action",
        "switch_clinician_action",
        "end_action",
        "pause_action",
        "mini_action",
        "limit_action",
        "day_view_action",
        "quit_action",
        "keys_action",
        "about_action",
        "tray_menu",
        "tray_patient_actions",
        "tray_patients_end",
        "tray_show_action",
        "tray_pause_action",
        "tray_mini_action",
    }
)
"""What ``MainWindow.finish_start`` makes; asked for before it has run, it runs then."""


class _UntilStarted(QObject):
    """Finishes the start of the window it watches just after its first paint has been
    delivered, or at once when a key comes before it: a key's shortcut is looked up after the
    focus widget and its parents, the window last, have been asked whether they take it
    (ShortcutOverride), so the menus' keys are bound in time however soon after ``show()`` it
    is pressed. It keeps no reference to the window: the window would then outlive its last
    use until a garbage collection, and be deleted inside whatever Qt was doing then."""

    def __init__(self, parent: QObject) -> None:
        super().__init__(parent)
        self._queued = False

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if not isinstance(watched, MainWindow):
            return False
        kind = event.type()
        if kind in (QEvent.Type.ShortcutOverride, QEvent.Type.KeyPress):
            watched.finish_start()
        elif kind == QEvent.Type.Paint and not self._queued:
            self._queued = True
            # Queued, so the paint that triggered this is finished and flushed first.
            QTimer.singleShot(0, watched.finish_start)
        return False


def _section(text: str) -> QLabel:
    label = QLabel(text)
    label.setFont(theme.scaled_font(label, 1.1, bold=True))
    return label


class MainWindow(QMainWindow):
    """Renders the controller's ``WindowView``; every tap and key is forwarded to it."""

    def __init__(
        self,
        controller: SessionController,
        icon: QIcon | Callable[[], QIcon] | None = None,
        day_view_factory: Callable[[], DayView] | None = None,
    ) -> None:
        super().__init__()
        self._controller = controller
        self._icon = icon
        self._started = False
        self._shown_session: str | None = None
        self._day_view_factory = day_view_factory
        self.day_view: DayView | None = None
        self._close_confirmed = False
        self._pending_recovery: list[Interrupted] = []
        self.summary_dialog: SummaryDialog | None = None
        self.about_box: QMessageBox | None = None
        self.recovery_dialog: RecoveryDialog | None = None
        self.close_box: QMessageBox | None = None
        self.setWindowTitle("Therapy Timer")
        self.setObjectName("main-window")

        self.message_banner = Banner("Message")
        self.forgot_banner = Banner("Forgot-to-stop alert")
        self.undo_banner = Banner("Stopped for another patient")
        self.caseload = CaseloadStrip()
        self.header = SessionHeader()
        self.furnished = FurnishedBySwitch()
        self.pause_button = QPushButton("Pause (Space)")
        self.end_button = QPushButton("End session (Ctrl+E)")
        self.mini_button = QPushButton("Mini view")
        for button in (self.pause_button, self.end_button, self.mini_button):
            button.setMinimumHeight(theme.TOUCH_MIN)
            button.setMinimumWidth(theme.TOUCH_MIN * 3)
        self.pause_button.setAccessibleName("Pause")
        self.end_button.setAccessibleName("End session")
        self.mini_button.setAccessibleName("Show the mini view")
        self.tiles = TileGrid(columns=3)
        self.beside = TileGrid(columns=4, compact=True)
        self.untimed = UntimedList()
        self.search = CodeSearch(controller.catalogue)
        self.live = LiveStrip()
        self._mini: MiniView | None = None
        self.tray: QSystemTrayIcon | None = None
        self._tab_ordered: tuple[object, ...] = ()

        self._build_layout()
        self._build_menu_titles()
        self._build_shortcuts()
        self._connect_signals()
        self._render(controller.view)
        self._until_started = _UntilStarted(self)
        self.installEventFilter(self._until_started)
        # The window's minimum size is fixed here rather than recomputed by the layout whenever
        # a banner or tile appears: the offscreen platform (tests, smoke test) warns on every
        # size-hint change of a shown window ("does not support propagateSizeHints()").
        layout = self.layout()
        if layout is not None:
            layout.setSizeConstraint(QLayout.SizeConstraint.SetNoConstraint)
        self.setMinimumSize(480, 420)
        # Last: maximizing may create the native window, and hints set after it would warn.
        self._maximize_when_shown = not theme.resize_to_screen(self, 1100, 860)

    def setVisible(self, visible: bool) -> None:
        # Maximized where the screen is too small (theme.fit_to_screen) by showMaximized as it
        # is first shown: setWindowState would build the Qt namespace's enums before the
        # window's first paint (theme.pen).
        if visible and self._maximize_when_shown:
            self._maximize_when_shown = False
            self.showMaximized()  # which shows it through here
            return
        super().setVisible(visible)

    # -- construction --------------------------------------------------------------------------

    def _build_layout(self) -> None:
        # Furnished-by and the session's buttons share a row where it has room; on a narrow
        # screen (1024x600 at 125% font) the buttons take a row of their own (resizeEvent).
        actions = QHBoxLayout()
        actions.addStretch(1)
        actions.addWidget(self.pause_button)
        actions.addWidget(self.mini_button)
        actions.addWidget(self.end_button)
        controls = self._controls = QBoxLayout(QBoxLayout.Direction.LeftToRight)
        controls.addWidget(self.furnished)
        controls.addLayout(actions)

        body = QWidget()
        column = self._column = QVBoxLayout(body)
        column.addWidget(self.header)
        line = QFrame()
        line.setFrameShape(QFrame.Shape.HLine)
        column.addWidget(line)
        column.addLayout(controls)
        column.addWidget(_section("Timed codes: tap to start (the running one stops)"))
        column.addWidget(self.tiles, 3)
        self.beside_caption = _section("Supervised modalities: run beside a timed code")
        column.addWidget(self.beside_caption)
        column.addWidget(self.beside, 1)
        column.addWidget(_section("Untimed services"))
        column.addWidget(self.untimed)
        column.addWidget(self.search)
        # Only the treatment part scrolls on a short screen: the caseload, the banners and the
        # live totals stay in view.
        scroll = self.body_scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setWidget(body)

        central = QWidget()
        outer = QVBoxLayout(central)
        outer.addWidget(self.caseload)
        outer.addWidget(self.undo_banner)
        outer.addWidget(self.message_banner)
        outer.addWidget(self.forgot_banner)
        outer.addWidget(scroll, 1)
        outer.addWidget(self.live)
        self.setCentralWidget(central)

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        spacing = max(0, self._controls.spacing())
        needed = (
            self.furnished.sizeHint().width()
            + spacing
            + sum(
                b.sizeHint().width() + spacing
                for b in (self.pause_button, self.mini_button, self.end_button)
            )
        )
        margins = self._column.contentsMargins()
        room = self.body_room() - margins.left() - margins.right()
        wanted = (
            QBoxLayout.Direction.LeftToRight if needed <= room else QBoxLayout.Direction.TopToBottom
        )
        if self._controls.direction() != wanted:
            self._controls.setDirection(wanted)

    def body_room(self) -> int:
        """The width of the body's scroll area viewport, computed from the scroll area.

        Not ``viewport().width()``: the viewport is made by Qt, and the first Python wrapper of
        a widget made by Qt makes PySide6 load every widget class of QtWidgets (~60 enums)
        to find its type, ~30 ms of the window's first paint (issue 13). The same arithmetic
        as ``QAbstractScrollArea``'s layout: no frame here, and a shown vertical scroll bar
        takes its size hint's width.
        """
        scroll = self.body_scroll
        room = scroll.maximumViewportSize().width()
        bar = scroll.verticalScrollBar()
        if bar.isVisibleTo(scroll):
            room -= bar.sizeHint().width()
        return room

    def _build_menu_titles(self) -> None:
        # The titles are all the first paint shows of the menus; what opens one makes its
        # actions first (finish_start).
        menu_bar = self.menuBar()
        self.session_menu = menu_bar.addMenu("&Session")
        self.help_menu = menu_bar.addMenu("&Help")

    def finish_start(self) -> None:
        """Make what the first paint does not show (issue 13): the menus' actions and their
        keys, the tray's icon and menu, the window icon (~2 ms of a start, with the classes
        PySide6 builds for them). Called just after the first paint, or first by a key pressed
        before it (_UntilStarted) or a menu about to open, or by asking for one of them."""
        if self._started:
            return
        self._started = True
        self.removeEventFilter(self._until_started)
        if self._icon is not None:
            # The application's, so its dialogs and the mini view take it too.
            icon = self._icon if isinstance(self._icon, QIcon) else self._icon()
            QGuiApplication.setWindowIcon(icon)
        self._build_menus()
        self._connect_menus()
        # Here rather than in _connect_signals: nothing can ask before the first paint.
        self._controller.patient_ref_asked.connect(self._focus_patient_field)
        self._controller.clinician_asked.connect(self._focus_clinician_field)
        if QtWidgets.QSystemTrayIcon.isSystemTrayAvailable():
            self.tray = QtWidgets.QSystemTrayIcon(self.windowIcon(), self)
            self.tray.setContextMenu(self.tray_menu)
            self.tray.activated.connect(self._on_tray_activated)
        self._render_tray(self._controller.view)
        # Tab stopped on them with nothing to be seen: the strip's buttons and the body's
        # widgets take the focus themselves, and each area still scrolls to the one that has it.
        for area in (self.caseload.scroll_area, self.body_scroll):
            area.setFocusPolicy(QtCore.Qt.FocusPolicy.NoFocus)
        self._order_tabs(self._controller.view)
        focused = QtWidgets.QApplication.focusWidget()
        if not self._controller.view.header.session_open and (
            focused is None or not self.header.isAncestorOf(focused)
        ):
            # What is typed first is the patient: the window gave the keys to the caseload's
            # empty strip, the first widget that takes them, where initials went nowhere and
            # a digit said "Type the patient's reference first".
            self._focus_patient_field()

    @property
    def started(self) -> bool:
        """Whether ``finish_start`` has run."""
        return self._started

    if not TYPE_CHECKING:  # hidden from mypy, which checks every other name

        def __getattr__(self, name: str) -> object:
            if name in MADE_AFTER_THE_FIRST_PAINT and not self.__dict__.get("_started", True):
                self.finish_start()
                return getattr(self, name)
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def _build_menus(self) -> None:
        from PySide6.QtGui import QAction  # here: see TYPE_CHECKING above

        session = self.session_menu
        self.new_patient_action = QAction("&New patient", self)
        # setShortcuts([...]) is what setShortcut does; setShortcut itself would build the Qt
        # namespace's enums (theme.pen) to choose its overload.
        self.new_patient_action.setShortcuts([QKeySequence("Ctrl+N")])
        self.switch_clinician_action = QAction("Switch &clinician…", self)
        self.switch_clinician_action.setShortcuts([QKeySequence("Ctrl+Shift+C")])
        session.addAction(self.new_patient_action)
        session.addAction(self.switch_clinician_action)
        session.addSeparator()
        self.end_action = QAction("&End session…", self)
        self.end_action.setShortcuts([QKeySequence("Ctrl+E")])
        self.pause_action = QAction("&Pause or resume", self)
        self.mini_action = QAction("&Mini view", self)
        self.mini_action.setShortcuts([QKeySequence("Ctrl+M")])
        self.limit_action = QAction("&Forgot-to-stop alert after…", self)
        self.day_view_action = QAction("&Day view (front desk)…", self)
        self.day_view_action.setShortcuts([QKeySequence("Ctrl+D")])
        self.day_view_action.setEnabled(self._day_view_factory is not None)
        self.quit_action = QAction("&Quit", self)
        # The platform's quit key; Windows has none (Alt+F4 closes a window, not the app).
        self.quit_action.setShortcuts(
            QKeySequence.keyBindings(QKeySequence.StandardKey.Quit) or [QKeySequence("Ctrl+Q")]
        )
        for action in (self.end_action, self.pause_action, self.mini_action):
            session.addAction(action)
        session.addSeparator()
        session.addAction(self.day_view_action)
        session.addAction(self.limit_action)
        session.addSeparator()
        session.addAction(self.quit_action)
        help_menu = self.help_menu
        self.keys_action = QAction("&Keyboard shortcuts", self)
        self.about_action = QAction("&About Therapy Timer", self)
        help_menu.addAction(self.keys_action)
        help_menu.addAction(self.about_action)
        # The tray's menu: every running patient first (a tap shows that patient), then the
        # window's actions. Built even without a tray, so it is the same everywhere.
        menu = self.tray_menu = QtWidgets.QMenu(self)
        self.tray_patient_actions: list[QAction] = []
        self.tray_patients_end = menu.addSeparator()
        self.tray_show_action = menu.addAction("Show window")
        self.tray_pause_action = menu.addAction("Pause or resume")
        self.tray_mini_action = menu.addAction("Mini view")

    def _build_shortcuts(self) -> None:
        # Window-wide, so a tap target having focus does not matter; a text field keeps its
        # digits and spaces because line edits claim plain keys first (ShortcutOverride).
        self.digit_shortcuts = [QShortcut(QKeySequence(str(n)), self) for n in range(1, 10)]
        self.space_shortcut = QShortcut(QKeySequence("Space"), self)
        self.patient_shortcuts = [QShortcut(QKeySequence(f"Ctrl+{n}"), self) for n in range(1, 10)]

    def _connect_signals(self) -> None:
        """All wiring between the widgets, the window and the controller, in one place."""
        c = self._controller
        c.view_changed.connect(self._on_controller_view_changed)
        c.forgot_to_stop_raised.connect(self._on_controller_forgot_to_stop_raised)
        c.forgot_to_stop_cleared.connect(self.forgot_banner.hide)

        self.header.draft_edited.connect(c.set_draft)
        self.furnished.furnished_by_chosen.connect(c.set_furnished_by)
        self.tiles.tile_tapped.connect(c.start_code)
        self.beside.tile_tapped.connect(self._on_beside_tile_tapped)
        self.tiles.tile_removal_requested.connect(c.remove_code)
        self.beside.tile_removal_requested.connect(c.remove_code)
        self.untimed.toggled.connect(c.set_untimed)
        self.untimed.minutes_edited.connect(c.set_untimed_minutes)
        self.search.code_chosen.connect(c.add_code)

        self.pause_button.clicked.connect(c.toggle_pause)
        self.end_button.clicked.connect(self._on_end_requested)
        self.mini_button.clicked.connect(self._on_mini_requested)
        self.message_banner.primary_clicked.connect(c.clear_message)
        self.forgot_banner.primary_clicked.connect(self._on_forgot_banner_stop_clicked)
        self.forgot_banner.secondary_clicked.connect(c.snooze_forgot_to_stop)

        self.session_menu.aboutToShow.connect(self.finish_start)
        self.help_menu.aboutToShow.connect(self.finish_start)
        for number, shortcut in enumerate(self.digit_shortcuts, start=1):
            shortcut.activated.connect(lambda number=number: c.start_nth(number))
        self.space_shortcut.activated.connect(c.toggle_pause)
        for number, shortcut in enumerate(self.patient_shortcuts, start=1):
            shortcut.activated.connect(lambda number=number: c.switch_nth(number))
        self.caseload.session_chosen.connect(c.switch_to)
        self.caseload.new_patient_requested.connect(self._on_new_patient_requested)
        self.undo_banner.primary_clicked.connect(c.undo_elsewhere)
        self.undo_banner.secondary_clicked.connect(c.dismiss_undo)

    def _connect_menus(self) -> None:
        """The menus' wiring, done as they are made (``finish_start``)."""
        c = self._controller
        self.new_patient_action.triggered.connect(self._on_new_patient_requested)
        self.switch_clinician_action.triggered.connect(self._on_switch_clinician_requested)
        self.end_action.triggered.connect(self._on_end_requested)
        self.pause_action.triggered.connect(c.toggle_pause)
        self.mini_action.triggered.connect(self._on_mini_requested)
        self.limit_action.triggered.connect(self._on_limit_requested)
        self.day_view_action.triggered.connect(self._on_day_view_requested)
        self.quit_action.triggered.connect(self.close)
        self.keys_action.triggered.connect(self._on_keys_requested)
        self.about_action.triggered.connect(self._on_about_requested)
        self.tray_show_action.triggered.connect(self._on_mini_expand_tapped)
        self.tray_pause_action.triggered.connect(c.toggle_pause)
        self.tray_mini_action.triggered.connect(self._on_mini_requested)

    def _connect_mini(self, mini: MiniView) -> None:
        """The mini view's wiring, done as it is made (``mini``)."""
        c = self._controller
        mini.code_tapped.connect(c.start_code)
        mini.pause_tapped.connect(c.toggle_pause)
        mini.expand_tapped.connect(self._on_mini_expand_tapped)

    @property
    def mini(self) -> MiniView:
        """The small always-on-top view, made when first asked for: hidden at the first paint,
        it need not cost a start (issue 13)."""
        if self._mini is None:
            from therapy_timer.gui.widgets.mini_view import MiniView

            self._mini = MiniView()
            self._mini.setWindowIcon(self.windowIcon())
            self._connect_mini(self._mini)
        return self._mini

    # -- rendering -----------------------------------------------------------------------------

    def _render(self, view: WindowView) -> None:
        shown = next((e.session_id for e in view.caseload if e.current), None)
        if shown is not None and self._shown_session not in (None, shown):
            # Another patient (the caseload, Ctrl+1-9): their name and times at the top, not
            # the last patient's scroll position, which on a short screen hid whose they were.
            self.body_scroll.verticalScrollBar().setValue(0)
        self._shown_session = shown
        self.header.set_view(view.header)
        self.furnished.set_value(view.furnished_by)
        self.tiles.set_views(view.tiles)
        self.beside.set_views(view.beside)
        self.beside_caption.setVisible(bool(view.beside))
        self.untimed.set_views(view.untimed)
        self.live.set_view(view.live)
        self.caseload.set_entries(view.caseload)
        if view.undo:
            self.undo_banner.show_message(view.undo, "&Undo", "OK")
        else:
            self.undo_banner.hide()
        running = view.running
        self.pause_button.setText("Resume (Space)" if view.paused else "Pause (Space)")
        self.pause_button.setAccessibleName("Resume" if view.paused else "Pause")
        self.pause_button.setEnabled(running is not None)
        self.end_button.setEnabled(view.header.session_open)
        if view.message:
            self.message_banner.show_message(view.message, "Dismiss")
        else:
            self.message_banner.hide()
        if running is not None and running.state is TileState.RUNNING:
            status = f"{running.code} running {format_elapsed(running.elapsed)}"
        elif running is not None:
            status = f"Paused: {running.code} {format_elapsed(running.elapsed)}"
        else:
            status = "Nothing running"
        patient = view.header.patient_ref if view.header.session_open else "New patient"
        self.setWindowTitle(f"{patient}: {status} · Therapy Timer")
        if self._started:
            self._render_tray(view)
            self._order_tabs(view)
        if self._mini is not None and self._mini.isVisible():
            self._mini.set_view(view)

    def _order_tabs(self, view: WindowView) -> None:
        """Tab down the body as it reads: the session's buttons, the tiles, the untimed
        services, the code search last. The tiles and rows are made after the search (again
        whenever the codes change), and a widget made later comes later in the Tab chain, so
        Tab went from End session to the search box at the bottom."""
        codes = (view.tiles, view.beside, view.untimed)
        shown = tuple(tuple(v.code for v in views) for views in codes)
        if shown == self._tab_ordered:
            return
        self._tab_ordered = shown
        rows = [self.untimed.row(code) for code in self.untimed.codes]
        chain: list[QWidget] = [
            self.end_button,
            *self.tiles.tiles,
            *self.beside.tiles,
            *[widget for row in rows for widget in (row.toggle, row.minutes)],
            self.search,
        ]
        for first, second in pairwise(chain):
            QWidget.setTabOrder(first, second)

    # -- slots ---------------------------------------------------------------------------------

    def _on_controller_view_changed(self, view: WindowView) -> None:
        self._render(view)

    def _on_controller_forgot_to_stop_raised(self, alert: ForgotToStop) -> None:
        text = (
            f"{alert.code} has been running for {alert.minutes} minutes without a break. "
            "Did you forget to stop it?"
        )
        self.forgot_banner.show_message(text, f"Stop {alert.code}", "Still treating")
        if self.tray is not None:
            warning = QtWidgets.QSystemTrayIcon.MessageIcon.Warning
            self.tray.showMessage("Therapy Timer", text, warning)

    def _on_forgot_banner_stop_clicked(self) -> None:
        running = self._controller.view.running
        self._controller.stop_code(running.code if running is not None else None)

    def _on_beside_tile_tapped(self, code: str) -> None:
        # A running supervised modality stops on a second tap: nothing else would stop it.
        tile = next((t for t in self._controller.view.beside if t.code == code), None)
        if tile is not None and tile.state is TileState.RUNNING:
            self._controller.stop_code(code)
        else:
            self._controller.start_code(code)

    def _on_new_patient_requested(self) -> None:
        self._controller.new_patient()
        self._focus_patient_field()

    def _focus_patient_field(self) -> None:
        # The next thing typed is a patient reference: left on a tile, its digits would start
        # the numbered tiles for nobody instead.
        self.header.patient.setFocus(QtCore.Qt.FocusReason.OtherFocusReason)
        self._scroll_to(self.header.patient)

    def _focus_clinician_field(self) -> None:
        self.header.clinician.setFocus(QtCore.Qt.FocusReason.OtherFocusReason)
        self._scroll_to(self.header.clinician)

    def _scroll_to(self, field: QWidget) -> None:
        """Scroll the body to a field just given the keys: it scrolls on a short screen, and a
        field given them out of sight took a patient's initials unseen (a scroll area follows
        the keys only as Tab moves them)."""
        self.body_scroll.ensureWidgetVisible(field)

    def _on_switch_clinician_requested(self) -> None:
        """One step on a shared workstation: a new patient's header, the clinician field ready
        to type over; the others' sessions keep their own clinician."""
        self._controller.new_patient()
        self.header.clinician.setFocus(QtCore.Qt.FocusReason.ShortcutFocusReason)
        self._scroll_to(self.header.clinician)
        self.header.clinician.selectAll()

    def _on_end_requested(self) -> None:
        session_id = self._controller.prepare_end()
        if session_id is not None:
            from therapy_timer.gui.widgets.summary_dialog import SummaryDialog

            self.summary_dialog = SummaryDialog.show_for(self, self._controller, session_id)
            self.summary_dialog.finished.connect(self._on_summary_finished)

    def _on_summary_finished(self) -> None:
        if not self._controller.view.header.session_open:
            self._focus_patient_field()

    def _on_mini_requested(self) -> None:
        self.mini.set_view(self._controller.view)
        theme.settle_layout(self.mini)
        self.mini.show()  # a stays-on-top tool window: no raise_() needed

    def _on_mini_expand_tapped(self) -> None:
        if self._mini is not None:
            self._mini.hide()
        self.showNormal()
        self.raise_()
        self.activateWindow()

    def _render_tray(self, view: WindowView) -> None:
        self._render_tray_patients(view)
        if self.tray is not None:
            self.tray.setToolTip(caseload_summary(view) or "Therapy Timer: nothing running")

    def _render_tray_patients(self, view: WindowView) -> None:
        running = [e for e in view.caseload if e.is_running]
        actions = self.tray_patient_actions
        if [a.data() for a in actions] != [e.session_id for e in running]:
            for action in actions:
                self.tray_menu.removeAction(action)
                action.deleteLater()
            actions.clear()
            for entry in running:
                action = QtGui.QAction(self.tray_menu)
                action.setData(entry.session_id)
                action.triggered.connect(
                    lambda _checked=False, sid=entry.session_id: self._on_tray_patient_chosen(sid)
                )
                self.tray_menu.insertAction(self.tray_patients_end, action)
                actions.append(action)
        for action, entry in zip(actions, running, strict=True):
            action.setText(caseload_line(entry))
        self.tray_patients_end.setVisible(bool(running))

    def _on_tray_patient_chosen(self, session_id: str) -> None:
        self._controller.switch_to(session_id)
        self._on_mini_expand_tapped()

    def _on_tray_activated(self, reason: QSystemTrayIcon.ActivationReason) -> None:
        if reason is QtWidgets.QSystemTrayIcon.ActivationReason.Trigger:
            self._on_mini_expand_tapped()

    def _on_day_view_requested(self) -> None:
        if self._day_view_factory is None:
            return
        if self.day_view is None:
            self.day_view = self._day_view_factory()
            self.day_view.setWindowFlag(QtCore.Qt.WindowType.Window)
            hint = self.day_view.sizeHint()
            theme.fit_to_screen(self.day_view, hint.width(), hint.height())
        else:
            self.day_view.reload()
        self.day_view.show()
        self.day_view.raise_()

    def _on_limit_requested(self) -> None:
        from PySide6.QtWidgets import QInputDialog

        dialog = QInputDialog(self)
        dialog.setWindowTitle("Forgot-to-stop alert")
        dialog.setLabelText("Alert when one code has run this many minutes without a break:")
        dialog.setInputMode(QInputDialog.InputMode.IntInput)
        dialog.setIntRange(1, 240)
        dialog.setIntValue(self._controller.forgot_to_stop_minutes)
        dialog.intValueSelected.connect(self._controller.set_forgot_to_stop_minutes)
        dialog.setAttribute(QtCore.Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.open()

    def _on_keys_requested(self) -> None:
        self._open_box("Keyboard shortcuts", SHORTCUTS_HELP)

    def _on_about_requested(self) -> None:
        folder = data_folder_text(Path(self._controller.data_dir_text))
        self.about_box = self._open_box(
            "About Therapy Timer",
            f"Therapy Timer {__version__}\nPer-code treatment stopwatches and billing-correct "
            f"units for PT, OT and SLP.\n\n{folder}",
        )

    def _open_box(self, title: str, text: str) -> QMessageBox:
        from PySide6.QtWidgets import QMessageBox

        box = QMessageBox(QMessageBox.Icon.Information, title, text, parent=self)
        box.setAttribute(QtCore.Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()
        return box

    # -- start-up recovery ---------------------------------------------------------------------

    def offer_recovery(self) -> None:
        """Ask, one session at a time, what to do with timers left running by a crash."""
        self._pending_recovery = self._controller.interrupted()
        self._offer_next_recovery()

    def _offer_next_recovery(self) -> None:
        if not self._pending_recovery:
            self.recovery_dialog = None
            return
        interrupted = self._pending_recovery.pop(0)

        def chosen(choice: RecoveryChoice) -> None:
            self._controller.recover(interrupted.session.id, choice)
            self._offer_next_recovery()

        from therapy_timer.gui.widgets.recovery_dialog import RecoveryDialog

        self.recovery_dialog = RecoveryDialog.show_for(self, interrupted, chosen)

    # -- closing -------------------------------------------------------------------------------

    def closeEvent(self, event: QCloseEvent) -> None:
        running = self._controller.view.running
        if self._close_confirmed or running is None or running.state is not TileState.RUNNING:
            if self._mini is not None:
                self._mini.close()
            self._controller.stop_background()
            event.accept()
            return
        event.ignore()
        from PySide6.QtWidgets import QMessageBox

        box = QMessageBox(
            QMessageBox.Icon.Warning,
            "A stopwatch is running",
            f"{running.code} is still running ({format_elapsed(running.elapsed)}). If you close "
            "the window it keeps counting (like a timer started from the command line), and "
            "the window shows it again when it opens.",
            parent=self,
        )
        stop = box.addButton("Stop timers and close", QMessageBox.ButtonRole.DestructiveRole)
        keep = box.addButton("Close, keep timing", QMessageBox.ButtonRole.AcceptRole)
        cancel = box.addButton("Keep the window open", QMessageBox.ButtonRole.RejectRole)
        for button in (stop, keep, cancel):
            button.setMinimumHeight(theme.TOUCH_MIN)
            button.setAccessibleName(button.text())
        box.setDefaultButton(cancel)
        box.setEscapeButton(cancel)

        def decided() -> None:
            clicked = box.clickedButton()
            if clicked is stop:
                self._controller.stop_code(None)
            if clicked in (stop, keep):
                self._close_confirmed = True
                self.close()

        box.finished.connect(decided)
        box.setAttribute(QtCore.Qt.WidgetAttribute.WA_DeleteOnClose)
        self.close_box = box
        box.open()


def caseload_summary(view: WindowView) -> str:
    """Every running patient in a line each, for the tray's tooltip."""
    return "\n".join(caseload_line(e) for e in view.caseload if e.is_running)


def caseload_line(entry: CaseloadEntry) -> str:
    """One running patient as the tray names it: who, what runs, for how long."""
    return f"{entry.patient_ref}: {entry.running} {format_elapsed(entry.elapsed)}"
