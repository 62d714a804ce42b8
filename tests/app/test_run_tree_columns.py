"""The Runs list's run column shows the runs' names in the browser's narrow list (it was left ~26 px
by the other columns), and keeps a width the person dragged it to."""
from pathlib import Path

from app.panels.run_tree import C_FAMILY, C_NAME, NAME_MAX, NAME_MIN, RunTree
from engine.runs.index import RunSummary


def _summary(folder: Path, name: str, family: str) -> RunSummary:
    return RunSummary(path=folder / name, name=name, state="finished", family=family, dataset="digits",
                      step=40, total_steps=40, loss_tail=[1.0, 0.5, 0.3])


def _visible_text(tree: RunTree, name: str) -> str:
    """What the run column's cell shows of `name`, elided to the column as the view draws it."""
    room = tree.header().sectionSize(C_NAME) - 2 * tree.indentation() - 12
    return tree.fontMetrics().elidedText(name, tree.textElideMode(), room)


def test_the_run_column_is_wide_enough_for_the_names_in_a_narrow_list(qtbot, tmp_path):
    tree = RunTree()
    qtbot.addWidget(tree)
    tree.resize(330, 220)                       # the browser's list beside the run's details at 1280 px
    tree.show()
    names = ["20261207-172553-dcgan-digits", "20261207-172437-cvae-digits"]
    folder = tree.folder_item(tmp_path)
    tree.show_folder(folder, [_summary(tmp_path, n, f) for n, f in zip(names, ("gan", "vae"))], {})
    width = tree.header().sectionSize(C_NAME)
    assert NAME_MIN <= width <= NAME_MAX
    head = tree.header()
    # the state and the family stay in view beside the names ...
    assert head.sectionViewportPosition(C_FAMILY) + head.sectionSize(C_FAMILY) <= tree.viewport().width()
    for n in names:   # ... and a name cut to fit keeps what tells the runs apart: its time and its preset
        shown = _visible_text(tree, n)
        assert shown == n or (shown.startswith("…") and shown.endswith(n[-len("2553-dcgan-digits"):]))
    # in a wider list the names read in full
    tree.resize(600, 220)
    tree.show_folder(folder, [_summary(tmp_path, n, f) for n, f in zip(names, ("gan", "vae"))], {})
    assert [_visible_text(tree, n) for n in names] == names
    # a very long name is cut at the left: its preset stays readable
    long = "20261207-172437-" + "x" * 80 + "-stylegan-shapes"
    tree.show_folder(folder, [_summary(tmp_path, long, "stylegan")], {})
    assert tree.header().sectionSize(C_NAME) == NAME_MAX
    shown = _visible_text(tree, long)
    assert shown.startswith("…") and shown.endswith("x-stylegan-shapes")

    # the person drags the column: a refill keeps their width
    tree.header().resizeSection(C_NAME, 200)
    tree.show_folder(folder, [_summary(tmp_path, n, "gan") for n in names], {})
    assert tree.header().sectionSize(C_NAME) == 200
