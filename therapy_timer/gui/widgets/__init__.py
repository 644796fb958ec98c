"""Thin views of the main window: they render view snapshots and forward taps as signals."""
