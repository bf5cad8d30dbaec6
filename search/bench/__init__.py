"""Benchmarks of the search platform (python -m search.bench ...):

    (none)     overhead.py       how much of a trial slot goes into training, on real short trials
    compare    compare.py        strategies side by side on real trials and the same step budget
                                 (compare_report.py: IQM, paired wins, the table and plot)
    curves     curves.py         learning curves recorded (or harvested from a search) for the simulator
    simulate   simulate_many.py  strategies in simulated time (simulate.py) on recorded curves, replayed
                                 (table.py) or predicted (surrogate.py); anytime.py and sim_report.py report
    tables     doc_tables.py     the docs' generated tables, from the committed JSON (measured.py: README's
                                 table of what was measured)
    scale      scale.py          the search driver at 10-10,000 trials and 16-64 at once, replayed trials
                                 (scale_timing.py: where the driver's time goes; scale_rows.py: rows)
    optuna     optuna_cost.py    one suggest's cost as the study grows, TPE's whole history and bounded

budget_stop.py is the step budget a compared run stops at; spec.py a strategy with changed settings.
"""
