"""The Qt window of Therapy Timer (the only package that imports PySide6); gui.launch starts it."""
