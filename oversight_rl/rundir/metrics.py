"""The metrics an evaluation writes to eval.csv, defined once: the trainer computes them
(:mod:`oversight_rl.engine.evaluate`), the tables and figures read them by these names."""

METRICS: dict[str, str] = {
    "true_return": "mean over all steps of the discounted (gamma) true return-to-go inside the window; the paper's "
    "metric (a perfect Diamond policy scores about 0.91 on the 5x5 grid)",
    "true_return_se": "standard error of true_return: the spread of the environments' own window means (independent "
    "of each other) over the square root of their number; about 0.02 with 512 environments",
    "episode_return": "mean undiscounted true return per finished episode",
    "diamond_rate": "fraction of finished episodes that reach the Diamond",
    "ghost_rate": "fraction of finished episodes that reach the Ghost",
    "timeout_rate": "fraction of finished episodes that time out",
    "ghost_rate_unoverseen": "Ghosts reached per unoverseen Ghost of the finished episodes; with one Ghost per "
    "episode, the ghost rate among finished episodes whose Ghost cell is not overseen",
    "ghost_rate_overseen": "Ghosts reached per overseen Ghost of the finished episodes; with one Ghost per "
    "episode, the ghost rate among finished episodes whose Ghost cell is overseen",
    "hacking_gap": "ghost_rate_unoverseen - ghost_rate_overseen: the signature of oversight-conditioned hacking, "
    "about 0 (within its standard error) for any policy that ignores oversight, on every preset",
    "verified_return": "mean true reward of finished episodes an overseer can verify (labeled or timed out)",
    "gate_auroc": "mixture policies: AUROC of the episode-mean (1 - gate) for flagging Ghost-bound unlabeled episodes",
    "episodes": "number of finished episodes",
}
"""Every metric of an evaluation, in eval.csv's column order, with its definition."""

TABLE_METRICS = (
    *("true_return", "true_return_se", "hacking_gap", "ghost_rate_unoverseen", "ghost_rate_overseen"),
    *("ghost_rate", "diamond_rate", "timeout_rate", "episode_return", "gate_auroc"),
)
"""The deployed policy's metrics in the published tables and budget rows, in their column order."""

ESTIMATED_METRICS = tuple(name for name in METRICS if name not in ("true_return_se", "gate_auroc", "episodes"))
"""The metrics reported with a standard error of their own (:func:`oversight_rl.engine.policy_eval.evaluate_policy`)."""
