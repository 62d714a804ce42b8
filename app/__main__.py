"""`genlab` / `python -m app`: open the workbench on its built-in default (digits + ddpm-digits)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from app.canvases import TAB_KEYS
from engine.core.families import DEFAULT_PRESET


def window_size(text: str) -> tuple[int, int]:
    """'1024x640' -> (1024, 640), for --size."""
    try:
        w, h = (int(v) for v in text.lower().replace("×", "x").split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give the size as WIDTHxHEIGHT, e.g. 1024x640") from None
    if w < 1 or h < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: the width and height must be positive")
    return w, h


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="genlab", description="GenLab: train and explore image generative models.")
    p.add_argument("--runs-root", help="where runs are written (default ~/GenLab/runs or $GENLAB_HOME/runs)")
    p.add_argument("--preset", default=DEFAULT_PRESET)
    p.add_argument("--open-run", help="open an existing run directory")
    p.add_argument("path", nargs="?", help="a run folder or a checkpoint to open (what a double-click on a "
                                           "checkpoint in the file manager passes)")
    p.add_argument("--train", action="store_true", help="press Start right away")
    p.add_argument("--tab", choices=TAB_KEYS, default="train",
                   help="the tab to show first")
    p.add_argument("--screenshot", help="save a screenshot of the window to this PNG after --screenshot-delay ms, then quit")
    p.add_argument("--screenshot-delay", type=int, default=3000)
    p.add_argument("--size", type=window_size, metavar="WxH",
                   help="the window's size, e.g. 1024x640 (default: the last one, else 1360x860 or "
                        "the screen's size where that is smaller)")
    args = p.parse_args(argv)

    from app.qt_check import qt_platform_hint
    hint = qt_platform_hint()
    if hint:   # Qt may still load (e.g. on Wayland); if it aborts, this line said why
        print(hint, file=sys.stderr)
    from PySide6.QtCore import QCoreApplication, QSettings, QTimer
    from PySide6.QtWidgets import QApplication
    from app.dialogs import apply_ui_scale, runs_root_setting
    from app.icon import app_icon
    from app.main_window import MainWindow

    QCoreApplication.setOrganizationName("GenLab")
    QCoreApplication.setApplicationName("GenLab")
    settings = QSettings() if not args.screenshot else None
    apply_ui_scale(settings)   # QT_SCALE_FACTOR is read when the QApplication is created
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setDesktopFileName("genlab")  # Wayland: the app id that finds genlab.desktop (its icon and menu entry)
    app.setWindowIcon(app_icon())
    runs_root = Path(args.runs_root) if args.runs_root else runs_root_setting(settings)
    win = MainWindow(runs_root, preset=args.preset, settings=settings)
    if args.size:
        win.resize(*args.size)
    win.show()
    run_dir, checkpoint = args.open_run, None
    if args.path:
        from app.desktop_install import open_target
        try:
            target_run, checkpoint = open_target(args.path)
            run_dir = target_run or run_dir
        except ValueError as e:
            win.status_label.setText(f"cannot open {e}")
    if run_dir:
        win.open_run(run_dir)
    if checkpoint:
        win.set_checkpoint(checkpoint, load=False)  # loaded when its tab shows
    win.show_tab("sample" if checkpoint and args.tab == "train" else args.tab)
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
