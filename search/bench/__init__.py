"""Benchmarks of the search platform (python -m search.bench ...):

    (none)     overhead.py   how much of a trial slot goes into training, on real short trials
    compare    compare.py    strategies side by side on real trials and the same step budget
    curves     curves.py     learning curves recorded (or harvested from a search) for the simulator
    simulate   simulate.py   strategies in simulated time on a surrogate of recorded curves
    scale      scale.py      the search driver at 10-1,000 trials and 16-64 at once, replayed trials

budget_stop.py is the step budget a compared run stops at.
"""
