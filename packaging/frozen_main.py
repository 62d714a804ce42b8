"""Entry point of the PyInstaller build (packaging/genlab.spec). A frozen build is one executable
with no `python -m`, so the first argument picks what it runs:

  genlab [GUI options]                 the workbench (app/__main__.py)
  genlab --engine ARGS...              the engine, what `python -m engine ARGS...` is in a checkout
                                       (the GUI starts its engine processes this way when frozen)
  genlab -u -m engine ARGS...          the same: what the GUI runs when app/engine_client.py does
                                       not check for a frozen build
  genlab --install-desktop [OPTIONS]   genlab-install-desktop (app/desktop_install.py)
"""
from __future__ import annotations

import multiprocessing
import sys


def main() -> int:
    # a frozen child process started by multiprocessing (spawn) must run its task, not the app
    multiprocessing.freeze_support()
    first = sys.argv[1] if len(sys.argv) > 1 else ""
    if first == "--engine":
        from engine.cli.main import main as engine_main
        return engine_main(sys.argv[2:])
    for python_m in (["-u", "-m", "engine"], ["-m", "engine"]):
        # what app/engine_client.py runs when it does not know it is frozen: `python -u -m engine ...`
        if sys.argv[1:1 + len(python_m)] == python_m:
            from engine.cli.main import main as engine_main
            return engine_main(sys.argv[1 + len(python_m):])
    if first == "--install-desktop":
        from app.desktop_install import main as install_main
        return install_main(sys.argv[2:])
    from app.__main__ import main as app_main
    return app_main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
