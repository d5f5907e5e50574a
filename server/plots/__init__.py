"""Every plot the project draws, in one folder (the lowest layer that draws: server/).

run.py: a run directory's PNGs (accuracy, partition, per-task accuracy, accuracy
matrix); bench.py: a bench grid's accuracy curves; privacy_tradeoff.py: the bench's
privacy/utility figure; report_figures.py: the HTML report's embedded figures.
simulations/ imports these (downward); nothing here imports simulations/.
"""

from server.plots.run import (
    plot_accuracy,
    plot_accuracy_matrix,
    plot_partition,
    plot_task_accuracy,
    pyplot,
)

__all__ = [
    "plot_accuracy",
    "plot_accuracy_matrix",
    "plot_partition",
    "plot_task_accuracy",
    "pyplot",
]
