"""How a run's models generalise: out-of-distribution jets, loss curvature, compressibility, smearing."""
