"""MLflow tracking of a search:

    runs.py       the parent run of a search and its child runs: create, reopen, close
    callback.py   the Ray Tune callback that logs every trial as a child run (imports Ray)
    best.py       the export's part: the best checkpoint, its IWAE figures and the summary
"""
