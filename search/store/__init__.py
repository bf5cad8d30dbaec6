"""The Ray-free side of a search: its folder and what is kept there. Nothing here imports Ray, so the
export, the commands' checks and the benchmarks read a search without starting it.

    storage.py        local folders and URIs (s3://, gs://, ...), written whole or not at all
    folder.py         a search folder's layout and search.json (SearchInfo)
    tune_files.py     the names of Tune's state files, and how a search folder is told from others
    keys.py           the result keys the platform reads, and "better" under min / max
    outcome.py        how a trial ended: one classifier for Optuna, the ledger and MLflow
    ledger.py         trials.json: every trial's parameters, outcome, best value, checkpoints, lineage
    ranking.py        the trials ranked, the best one and its best checkpoint
    table.py          the table of the best trials
    provenance.py     signatures of Ray Tune's state files (a resume unpickles them)
    places.py         where the folder, the study and the tracking store live; a password in their URIs
    study.py          the search's Optuna study, in a journal file or a database
    study_figures.py  parameter importances and parallel coordinates from the study
    errors.py         the one-line errors of the search commands
"""
