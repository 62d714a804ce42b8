"""File ▸ Recent runs and Recent checkpoints fill however a run is opened or trained and however a
checkpoint reaches the worker (a drop, the runs browser, the toolbar, File ▸ Open, training's own
checkpoints shown on a canvas); a checkpoint the worker refuses is not added."""
from test_canvas_views import DDPM, DDPM_OPTIONS as OPTIONS


def _menu(w, title: str) -> list[str]:
    """The paths File ▸ `title` lists when it opens."""
    menu = w.menus.menus[title]
    menu.aboutToShow.emit()
    return [a.data() for a in menu.actions() if a.data()]


def _checkpoint(tmp_path, run: str, step: int) -> str:
    path = tmp_path / "runs" / run / "checkpoints" / f"step_{step:06d}.safetensors"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"stand-in")   # the fake worker never reads it; the recent list keeps files that exist
    return str(path)


def _loads(client, w, path):
    """The worker answers the load of `path` (the newest load sent)."""
    load = client.last("load")
    assert load["checkpoint"] == path
    client.ready(DDPM, OPTIONS, checkpoint=path, rid=load["id"])


def test_runs_trained_here_and_opened_are_recent_runs(faked, tmp_path):
    client, w = faked
    assert _menu(w, "Recent runs") == []
    first, second = tmp_path / "runs" / "one", tmp_path / "runs" / "two"
    for run in (first, second):
        run.mkdir(parents=True)
        w.training.run_started.emit(str(run))           # Start (and Continue) announce the run they train
    assert _menu(w, "Recent runs") == [str(second), str(first)]
    w.runs.open_run.emit(str(first))                    # opened from the runs browser: first again
    assert _menu(w, "Recent runs")[0] == str(first)


def test_every_checkpoint_the_worker_loads_is_recent_and_a_refused_one_is_not(faked, tmp_path):
    client, w = faked
    trained = _checkpoint(tmp_path, "one", 20)
    w.training.checkpoint_saved.emit(trained)           # noted while training: not used yet
    assert _menu(w, "Recent checkpoints") == []
    w.show_tab("sample")                                # a canvas needs it: loaded, so it is used
    _loads(client, w, trained)
    assert _menu(w, "Recent checkpoints") == [trained]

    dropped = _checkpoint(tmp_path, "two", 10)
    w.open_dropped(dropped)
    _loads(client, w, dropped)
    browsed = _checkpoint(tmp_path, "two", 30)
    w.runs.open_checkpoint.emit(browsed)
    _loads(client, w, browsed)
    menu_opened = _checkpoint(tmp_path, "one", 10)
    w.menus.ask_open = lambda *_a: menu_opened
    w.menus.actions["open_checkpoint"].trigger()
    _loads(client, w, menu_opened)
    w.checkpoint_bar.picked.emit(trained)               # the toolbar's list
    _loads(client, w, trained)
    assert _menu(w, "Recent checkpoints") == [trained, menu_opened, browsed, dropped]

    # a checkpoint that cannot be loaded is not added, whichever way it came
    broken = _checkpoint(tmp_path, "three", 10)
    w.open_dropped(broken)
    client.event.emit({"event": "error", "id": client.last("load")["id"], "op": "load",
                       "message": f"{broken}: not a GenLab checkpoint"})
    assert w.session.checkpoint == trained
    assert broken not in _menu(w, "Recent checkpoints")
    assert broken not in [w.checkpoint_bar.combo.itemData(i) for i in range(w.checkpoint_bar.combo.count())]
