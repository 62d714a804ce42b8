"""Fixtures shared by the window tests."""
import pytest
from test_canvas_views import FakeClient

from app.main_window import MainWindow
from app.worker_session import WorkerSession


@pytest.fixture
def faked(qtbot, tmp_path):
    """A window whose engine worker is played by the test."""
    client = FakeClient()
    w = MainWindow(runs_root=tmp_path / "runs", session=WorkerSession(client))
    qtbot.addWidget(w)
    w.show()
    yield client, w
    w.close()
