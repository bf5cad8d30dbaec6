"""The Ray side of a search: everything that imports Ray (late: a dry run or a mistake in a file
answers without it).

    cluster.py      a private local Ray (loopback only) or an existing cluster, and its storage
    tuner.py        the Tuner: trainable, strategy, callbacks, checkpoints, failures
    trainable.py    one trial = one matnet.train run, reporting to Tune
    searcher.py     the platform's Optuna searcher (honest about stopped trials)
    strategies/     the strategy registry: samplers x schedulers (random+asha, tpe+hyperband, ...), pbt
    callbacks.py    the trial ledger and the state signer, as Tune callbacks
    evaluation.py   the export's IWAE evaluation, here or as a Ray task
    compat.py       every private name of Ray, Tune or Optuna the project touches
"""
