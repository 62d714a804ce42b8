"""`genlab` / `python -m app`: open the workbench on its built-in default (digits + ddpm-digits)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from app.canvases import TAB_KEYS
from engine.families import DEFAULT_PRESET


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="genlab", description="GenLab: train and explore image generative models.")
    p.add_argument("--runs-root", help="where runs are written (default ~/GenLab/runs or $GENLAB_HOME/runs)")
    p.add_argument("--preset", default=DEFAULT_PRESET)
    p.add_argument("--open-run", help="open an existing run directory")
    p.add_argument("--train", action="store_true", help="press Start right away")
    p.add_argument("--tab", choices=TAB_KEYS, default="train",
                   help="the tab to show first")
    p.add_argument("--screenshot", help="save a screenshot of the window to this PNG after --screenshot-delay ms, then quit")
    p.add_argument("--screenshot-delay", type=int, default=3000)
    args = p.parse_args(argv)

    from PySide6.QtCore import QSettings, QTimer
    from PySide6.QtWidgets import QApplication
    from app.main_window import MainWindow

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("GenLab")
    app.setOrganizationName("GenLab")
    win = MainWindow(Path(args.runs_root) if args.runs_root else None, preset=args.preset,
                     settings=QSettings() if not args.screenshot else None)
    win.show()
    if args.open_run:
        win.open_run(args.open_run)
    win.show_tab(args.tab)
    if args.train:
        QTimer.singleShot(500, win.training.start)
    if args.screenshot:
        def shoot():
            win.grab().save(args.screenshot)
            win.close()
            app.quit()
        QTimer.singleShot(args.screenshot_delay, shoot)
    rc = app.exec()
    # delete the window (and its engine jobs) while Qt is still alive, not in interpreter
    # finalisation, where PySide6 objects can be torn down in the wrong order
    import shiboken6
    win.close()
    shiboken6.delete(win)
    return rc


if __name__ == "__main__":
    sys.exit(main())
