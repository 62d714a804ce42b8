"""The run directory and what reads it (light: no torch, the GUI imports these): rundir.py (the
folder's files), index.py (the runs browser's summaries and curves), fileops.py (rename, trash, export),
compare_table.py (the family comparison's columns), queue.py (the training queue of a runs folder), tensorboard_log.py (the run as TensorBoard
event files, exported or live) over event_file.py (the format, written without TensorBoard)."""
