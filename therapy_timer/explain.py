"""Plain-language explanations the window, the command line and the installer share (Qt-free)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

PAYER_PROFILE_HELP = (
    "A payer profile decides how this session's minutes become units.\n\n"
    "Method: CMS (Medicare and most plans that follow it) adds the timed minutes of all codes "
    "and bills by the 8-minute rule; AMA (many commercial payers) bills each code on its own, "
    "8 or more minutes per code for a unit.\n\n"
    "CQ/CO: whether minutes furnished by an assistant (PTA/OTA) are marked with the CQ or CO "
    "modifier; a payer that does not use them takes a profile without.\n\n"
    "Which method? The payer's contract or fee schedule says; when it does not, ask the payer "
    "or use Medicare's. Manage profiles with: therapy-timer payer list | show NAME | "
    "add NAME --method cms|ama [--no-assistant-modifiers] | default NAME."
)
"""What the payer box means: for its tooltip, ``payer --help`` and the README."""


def data_folder_text(data_dir: Path) -> str:
    """One sentence naming the folder that holds the clinic's records, for the About box."""
    return (
        f"Your records are in {data_dir} (the database, its daily backups and the clinic's "
        "code file). Uninstalling the program keeps this folder; delete it yourself to remove "
        "the records."
    )
