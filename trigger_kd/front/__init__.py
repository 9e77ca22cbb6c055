"""`trigger-kd front`: the accuracy-per-LUT sweep (sweep.py: knobs, grid, Pareto front and pick; run.py: Dask)."""
