"""The Qt binding itself holds up over a long session.

PySide6 6.12.0 decremented the reference count of ``True`` on every signal emission; after
some thousands of them (a long answer, a download's progress) the interpreter aborted with
"bool_dealloc". pyproject.toml keeps that release out; this catches any release that does it
(in a child process, since such a binding aborts the interpreter that runs it).
"""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.gui

CHILD = """
import gc, sys
from PySide6.QtCore import QObject, Signal

class Source(QObject):
    bare = Signal()
    text = Signal(str)
    anything = Signal(object)

source, heard = Source(), []
source.bare.connect(lambda: heard.append(None))
source.text.connect(heard.append)
source.anything.connect(heard.append)
gc.collect()
before = sys.getrefcount(True), sys.getrefcount(False), sys.getrefcount(None)
for i in range(300):
    source.bare.emit()
    source.text.emit("x")
    source.anything.emit(i % 2 == 0)
heard.clear()
gc.collect()
after = sys.getrefcount(True), sys.getrefcount(False), sys.getrefcount(None)
print("DRIFT", *[b - a for a, b in zip(before, after)])
"""


def test_emitting_signals_leaves_reference_counts_alone():
    out = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr[-1500:]
    assert out.stdout.split() == ["DRIFT", "0", "0", "0"], out.stdout
