"""Many runs: sweeps over methods, oversight levels and seeds in worker processes (or on Ray), hyperparameter
tuning, and budget ladders."""
