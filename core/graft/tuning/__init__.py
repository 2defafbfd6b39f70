"""Choosing how to transfer: sweeps over one stage that share what comes before it, and the learning-rate finder.

``space`` reads and vets a search space, ``study`` opens the Optuna study (the one
module that imports Optuna), ``trials`` runs one trial in the sweep folder
(``sweepdir``) on the stages trained once before it, ``pruning`` feeds each epoch to
the pruner, ``summary`` writes the sweep's ``report.md``; ``lrfind`` is the range test.
"""
