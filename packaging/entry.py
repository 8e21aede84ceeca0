"""What the frozen bundle runs: the ``fireside`` command (no arguments opens the window)."""

import multiprocessing
import sys

if __name__ == "__main__":
    # The engine runs in a spawned child; a frozen child re-enters here and must stop at this.
    multiprocessing.freeze_support()
    from app.cli import main

    sys.exit(main())
