"""Train the comparison's sweeps (resuming whatever exists) and regenerate docs/results.md's tables, CSVs and figures.

    python scripts/reproduce_results.py                         # the default parts; resumes; then the docs
    python scripts/reproduce_results.py --dry-run               # each part's sweep command and size, nothing run
    python scripts/reproduce_results.py --skip-training         # only the docs, from the runs that exist
    python scripts/reproduce_results.py --parts budget --device cuda --workers 1 --population-size 20
    python scripts/reproduce_results.py --parts paper-full --device cuda --workers 1   # the paper's full budget

Parts (each a resumable sweep in ROOT/PART, runnable alone with the sweep_oversight.py command --dry-run prints;
every run on --env-backend torch with --eval-envs 2048):

    main-default  5 oversight levels x routing filtering naive oracle x 10 seeds, default preset
    main-tuned    the same under --preset tuned (skipped, with a one-line reason, until every method is tuned)
    budget        10% oversight, constant learning rate, 4 methods x 5 seeds, one run each to the largest budget;
                  its evaluation right after 1M, 2M, ..., 32M steps is the final evaluation at that budget
                  (1M is 983,040 steps: whole windows, also for the oracle's 10%)
    ablations     10% oversight, no_routing constant_gate naive_early_stop x 10 seeds
    paper         --preset paper, 10% oversight, 4 methods x 3 seeds, --paper-env-steps (default 32,768,000);
                  its learning rate is constant, so it is read like budget: final values at 1M, 2M, ... as far
                  as its runs have come
    main-routing, main-routed-no-baseline
                  routing alone as main-default, under --routed-advantage unwatched_baseline / routed_no_baseline
    main-tuned-routing, main-tuned-expert-returns
                  routing alone as main-tuned, under unwatched_baseline / expert_returns, each with the best
                  setting of its own equal tuning
    budget-routing, budget-1pct, budget-1pct-paper-routing
                  routing alone as budget (unwatched_baseline); the budget study at 1% oversight, 4 methods;
                  routing alone at 1% under the paper's estimator (shared_baseline)
    paper-full    --preset paper at 327,680,000 steps, 5 levels x 4 methods x 3 seeds (not in the default --parts)
    label-noise   --label-noise E for E in 0 0.05 0.1 0.2 0.3, at 3% and 10% oversight, 4 methods x 10 seeds: one
                  sweep per E in ROOT/label-noise/E<E> (about 7.3 hours of one core; not in the default --parts)
    spurious-oversight
                  --env-kwargs '{"spurious_oversight": s}' for s in 0.1 0.3 at 10%, 4 methods x 10 seeds, in
                  ROOT/spurious-oversight/S<s>; s = 0 is label-noise's E = 0 (1.5 hours; not in the default)
    monitors      scripts/monitor_runs.py on each label-noise sweep, and on main-default and main-routing where their
                  runs keep checkpoints: the gate's and a probe's AUROC (about 100 s a run; not in the default)

    python scripts/reproduce_results.py --parts label-noise spurious-oversight monitors   # the post's claims, resumable

Then, whatever finished: docs/results_<part>.csv (results_monitors.csv: the monitors of each run measured),
docs/results_claims.csv, docs/img/<part>/*.png
and the generated sections of docs/results.md (between <!-- generated: NAME --> and <!-- end generated -->; the text
around them is kept), the summary at its top among them. Missing runs are counted, never a failure. A part whose
committed CSV holds more finished runs than its sweep directory has here (a fresh clone has no sweeps) is kept as
committed, with one line saying so, and so are the ablations with main-default (a kept section's printed command is
restated, nothing else); the claims and the summary are computed from the rows the CSVs then hold. Each part's
printed command states the device its runs were trained on, as they record it (a kept part's: as
oversight_rl/study/reproduce.py records it), not this invocation's --device. --force rewrites every part from the
runs that exist. Exit status: 0 when every part trained finished (or was skipped), 1 when a run failed or a part
could not start, 2 for bad flags (before anything is trained or written) or a file of the docs that cannot be
written (a full or read-only disk), 130 on Ctrl-C, 143 on SIGTERM.
"""

from __future__ import annotations

import sys

from oversight_rl.engine.command_line import cli
from oversight_rl.experiments.processes import Terminated, sigterm_as_interrupt
from oversight_rl.rundir.files import error_message
from oversight_rl.study.regenerate import regenerate
from oversight_rl.study.reproduce import ReproduceConfig, default_parts, dry_run, train_parts


def main(argv: list[str]) -> int:
    config = cli(ReproduceConfig, argv, description=__doc__)
    try:
        config.validate()
        parts = default_parts(config)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if config.dry_run:
        dry_run(parts, config)
        return 0
    ok = True
    if not config.skip_training:
        try:
            with sigterm_as_interrupt():
                ok = train_parts(parts, config)
        except KeyboardInterrupt as interruption:
            print("\ninterrupted: run the same command again to resume every part", file=sys.stderr)
            return 143 if isinstance(interruption, Terminated) else 130
    try:
        regenerate(parts, config)
    except OSError as error:  # a full or read-only --docs
        print(f"error: {error_message(error)}", file=sys.stderr)
        return 2
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
