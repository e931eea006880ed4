"""Tuning every method alike with Optuna: the same number of trials over the same search space, on tuning seeds apart
from the evaluation seeds, scored on validation episodes; resumable.

Each method is one Optuna study (TPE sampler, its first 10 trials drawn at random; maximizing) in an SQLite storage
inside the tuning directory. A trial trains its tuning seeds as one population
(:func:`oversight_rl.engine.launch.train_population`: same settings, different seeds) into
``<out>/<method>/trial-<number>/``, then scores each run's deployed policy on fresh *validation* episodes
(:func:`oversight_rl.engine.evaluate.evaluate_validation`, never the test episodes); the objective is the mean final
deployed validation ``true_return`` over the tuning seeds.

Running the same tuning again counts the trials each method has completed and runs only the rest. The sampler of each
invocation is seeded by the sampler seed plus the number of trials the study holds, so an uninterrupted tuning draws the
same sequence for every method, and a resumed one draws new settings instead of replaying its first ones; a trial whose
settings repeat a completed one's (a resumed tuning before this seeding) is not counted nor listed. A trial left
unfinished (interrupted, killed, or failed) is tried again with the same parameters in the same directory, so its runs
resume from their checkpoints. A tuning holds ``tuning.lock`` in its directory while it runs, so a second one there is
refused (:func:`~oversight_rl.rundir.lock.directory_lock`) rather than retrying the first's running trial.

Optuna is imported only here (``pip install -e '.[tune]'``).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from oversight_rl.core.methods import METHODS
from oversight_rl.engine.config import ADDED_SETTINGS, TUNED_PRESETS, TrainConfig, with_overrides
from oversight_rl.engine.deploy import load_policy
from oversight_rl.engine.evaluate import evaluate_validation, make_eval_env
from oversight_rl.engine.launch import train_population
from oversight_rl.experiments.sweep import DEFAULT_METHODS, RUNTIME_ONLY, resumable, warn_of_damage
from oversight_rl.rundir.files import CONFIG, atomic_write_bytes, read_json, run_name, write_csv
from oversight_rl.rundir.lock import directory_lock
from oversight_rl.rundir.status import DONE, run_status

MIN_TRIALS = 16
"""Fewest trials per method a tuning may claim (fewer only with ``allow_few_trials``, for smoke tests)."""
MIN_TUNING_SEED = 1000
"""Sweeps evaluate on seeds 0, 1, ..., so tuning seeds start here."""
STORAGE = "tuning.db"

SPACE: dict[str, tuple] = {
    "lr": ("log-uniform", 1e-4, 3e-3),
    "anneal_lr": ("choice", (True, False)),
    "ent_coef": ("log-uniform", 1e-3, 1e-1),
    "clip_coef": ("choice", (0.1, 0.2, 0.3)),
    "update_epochs": ("choice", (2, 4, 8)),
    "width": ("choice", (32, 64, 128)),
    "gate_coef": ("log-uniform", 0.01, 1.0),
}
"""The search space, the same for every method: a name of TrainConfig and how it is drawn. ``gate_coef`` is searched
only for methods that train their gate (routing, no_routing): constant_gate's gate is fixed, and single-expert
methods have none, so it would change nothing there."""
NOT_TUNED = ("method", "oversight", "seed", "preset", *RUNTIME_ONLY)
"""Settings a tuned preset leaves to the run: where it runs, and what the grid sets."""

PUBLISHED_CSV = Path("docs/tuning.csv")
"""Where --publish writes the trial table (relative to the working directory: the repository's root)."""


@dataclass
class TuneConfig:
    """Tune each method with the same number of trials over the same search space; run it again to resume."""

    methods: tuple[str, ...] = DEFAULT_METHODS
    """Methods to tune, each on its own: any of routing, no_routing, constant_gate, naive, naive_early_stop,
    filtering, oracle."""
    trials: int = MIN_TRIALS
    """Completed trials per method (at least 16 unless --allow-few-trials)."""
    allow_few_trials: bool = False
    """Allow fewer than 16 trials per method, for smoke tests; such a tuning is too small to compare methods."""
    oversight: float = 0.1
    """Oversight fraction the methods are tuned at."""
    seeds: tuple[int, ...] = (1000, 1001, 1002)
    """Tuning seeds (each >= 1000, apart from the evaluation seeds 0, 1, ... of sweeps); one population per trial."""
    validation_envs: int = 2048
    """Fresh environments of the validation window that scores each run (one window of max_steps steps each)."""
    sampler_seed: int = 0
    """Seed of each method's TPE sampler (the same for every method), plus the trials its study already holds."""
    out: str = "tuning"
    """Tuning directory: the Optuna storage (tuning.db) and every trial's run directories."""
    csv: str | None = None
    """Table of every completed trial of the tuning directory (default: OUT/tuning.csv)."""
    presets_file: str | None = None
    """Where each method's best setting is written (default: OUT/tuned_presets.json)."""
    publish: bool = False
    """Also publish the study: its table to docs/tuning.csv and each method's best setting to the package's presets
    (oversight_rl/engine/tuned_presets.json), which --preset tuned reads. Needs at least 16 trials per method; without
    it, nothing outside OUT (and --csv, --presets-file) is written."""
    train: TrainConfig = field(default_factory=TrainConfig)
    """Training settings shared by every trial; the search space's settings, method, oversight and seed are set
    by the tuning."""

    @property
    def csv_path(self) -> Path:
        return Path(self.csv) if self.csv else Path(self.out) / "tuning.csv"

    @property
    def presets_path(self) -> Path:
        return Path(self.presets_file) if self.presets_file else Path(self.out) / "tuned_presets.json"

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first bad flag."""
        fewest = 1 if self.allow_few_trials else MIN_TRIALS
        unknown = next((m for m in self.methods if m not in METHODS), None)
        low_seed = next((s for s in self.seeds if s < MIN_TUNING_SEED), None)
        checks = [
            (self.methods, "--methods needs at least one method"),
            (unknown is None, f"--methods must be among {', '.join(METHODS)}, got {unknown!r}"),
            (self.trials >= fewest, f"--trials must be >= {fewest}, got {self.trials} (--allow-few-trials allows 1)"),
            (
                not self.publish or self.trials >= MIN_TRIALS,
                f"--publish needs --trials >= {MIN_TRIALS}, got {self.trials}: a smaller tuning must not replace the"
                " published presets",
            ),
            (0.0 <= self.oversight <= 1.0, f"--oversight must be in [0, 1], got {self.oversight!r}"),
            (self.seeds, "--seeds needs at least one seed"),
            (low_seed is None, f"--seeds must be >= {MIN_TUNING_SEED} (apart from evaluation seeds), got {low_seed}"),
            (len(set(self.seeds)) == len(self.seeds), "--seeds must differ"),
            (self.validation_envs >= 1, f"--validation-envs must be >= 1, got {self.validation_envs}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)
        for method in self.methods:
            self.run_configs(method, {})[0].validate()

    def run_configs(self, method: str, params: dict) -> list[TrainConfig]:
        """The settings of a trial's runs: one per tuning seed."""
        return [
            with_overrides(self.train, **params, method=method, oversight=float(self.oversight), seed=seed)
            for seed in self.seeds
        ]

    def record(self) -> dict:
        """What a study keeps of the tuning's settings, to refuse resuming it with others."""
        train = {k: v for k, v in dataclasses.asdict(self.train).items() if k not in NOT_TUNED and k not in SPACE}
        return {"oversight": float(self.oversight), "seeds": list(self.seeds), "train": train}


def searched(method: str) -> list[str]:
    """The names of SPACE searched for ``method``."""
    return [name for name in SPACE if name != "gate_coef" or METHODS[method].gate_loss]


def import_optuna():
    try:
        import optuna
    except ImportError as error:
        raise ValueError("tuning needs Optuna: pip install -e '.[tune]'") from error
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


# ----- one trial --------------------------------------------------------------------------------------------------


def suggest(trial, method: str) -> dict:
    """Draw the trial's settings from SPACE."""
    params = {}
    for name in searched(method):
        kind, *values = SPACE[name]
        if kind == "choice":
            params[name] = trial.suggest_categorical(name, list(values[0]))
        else:
            params[name] = trial.suggest_float(name, values[0], values[1], log=True)
    return params


def trial_dir(tune: TuneConfig, method: str, number: int) -> Path:
    return Path(tune.out) / method / f"trial-{number:03d}"


def train_trial(cfgs: list[TrainConfig], run_dirs: list[Path], params: dict) -> None:
    """Train the runs not yet finished as one population, resuming those with a whole checkpoint."""
    todo = []
    for cfg, run_dir in zip(cfgs, run_dirs, strict=True):
        if (run_dir / CONFIG).exists():
            saved = read_json(run_dir / CONFIG)
            if any(saved.get(name) != value for name, value in params.items()):
                raise ValueError(f"{run_dir} holds a run of other settings; use another --out")
        if run_status(run_dir) != DONE:
            todo.append((cfg, run_dir, resumable(run_dir)))
    warn_of_damage(run_dirs)
    if todo:
        configs, dirs, resume = (list(column) for column in zip(*todo, strict=True))
        train_population(configs, dirs, resume=resume, progress=False)


def validation_return(run_dir: Path, cfg: TrainConfig, num_envs: int) -> float:
    """Final deployed ``true_return`` of a finished run on its validation episodes."""
    policy = load_policy(run_dir, "deployed").module
    env = make_eval_env(cfg.env, num_envs, cfg.oversight)
    return evaluate_validation(policy, env, cfg.seed, cfg.gamma)["true_return"]


def objective(tune: TuneConfig, method: str):
    """The function Optuna maximizes for ``method``: train a trial's population, score it on validation episodes."""

    def score(trial) -> float:
        params = suggest(trial, method)
        directory = trial_dir(tune, method, trial.user_attrs.get("resumes", trial.number))
        cfgs = tune.run_configs(method, params)
        run_dirs = [directory / run_name(method, cfg.oversight, cfg.seed) for cfg in cfgs]
        train_trial(cfgs, run_dirs, params)
        returns = [validation_return(d, cfg, tune.validation_envs) for d, cfg in zip(run_dirs, cfgs, strict=True)]
        trial.set_user_attr("validation_returns", returns)
        trial.set_user_attr("run_dirs", [str(d.relative_to(tune.out)) for d in run_dirs])
        value = float(np.mean(returns))
        shown = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())
        print(f"{method} trial {trial.number}: {shown} -> validation return {value:.3f}", flush=True)
        return value

    return score


# ----- studies ----------------------------------------------------------------------------------------------------


def storage_of(tune: TuneConfig):
    optuna = import_optuna()
    Path(tune.out).mkdir(parents=True, exist_ok=True)
    return optuna.storages.RDBStorage(f"sqlite:///{Path(tune.out).resolve() / STORAGE}")


def with_added_settings(before: dict, record: dict) -> dict:
    """A study's recorded tuning, with each training setting added since it was recorded at the value that computes
    what it did (:data:`~oversight_rl.engine.config.ADDED_SETTINGS`), so that a study resumes across such additions."""
    added = {k: v for k, v in ADDED_SETTINGS.items() if k in record["train"] and k not in before.get("train", {})}
    return {**before, "train": {**before.get("train", {}), **added}}


def open_study(tune: TuneConfig, storage, method: str):
    """The method's study, created on first use; ``ValueError`` if it was started with other tuning settings."""
    optuna = import_optuna()
    study = optuna.create_study(storage=storage, study_name=method, direction="maximize", load_if_exists=True)
    study.sampler = optuna.samplers.TPESampler(seed=tune.sampler_seed + len(study.trials))
    record = tune.record()
    before = study.user_attrs.get("tuning")
    if before is None:
        study.set_user_attr("tuning", record)
    elif with_added_settings(before, record) != record:
        changed = [f"{k}: {before.get(k)!r} -> {v!r}" for k, v in record.items() if before.get(k) != v]
        raise ValueError(
            f"--out {tune.out} holds a tuning of {method} with other settings ({'; '.join(changed)}); "
            "use another --out or the same settings"
        )
    return study


def root(trial) -> int:
    """The trial whose directory a trial uses: itself, or the unfinished trial it tries again."""
    return trial.user_attrs.get("resumes", trial.number)


def retry_unfinished(study, storage) -> None:
    """Queue each unfinished trial (left running by a killed process, or failed) again with its parameters, in its
    directory; a trial left running is marked failed first."""
    optuna = import_optuna()
    latest = {root(trial): trial for trial in study.trials}  # trials come in order of their numbers
    done = [trial.params for trial in completed(study)]
    for number, trial in latest.items():
        if trial.state == optuna.trial.TrialState.RUNNING:
            study_id = storage.get_study_id_from_name(study.study_name)
            trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
            storage.set_trial_state_values(trial_id, optuna.trial.TrialState.FAIL)
        unfinished = trial.state in (optuna.trial.TrialState.RUNNING, optuna.trial.TrialState.FAIL)
        if unfinished and trial.params not in done:
            study.enqueue_trial(trial.params, user_attrs={"resumes": number})


def completed(study) -> list:
    """The completed trials, but for any whose settings repeat an earlier completed trial's (same runs, same
    score: a repeat adds nothing to the search)."""
    complete = import_optuna().trial.TrialState.COMPLETE
    trials, seen = [], []
    for trial in study.trials:
        if trial.state == complete and trial.params not in seen:
            trials.append(trial)
            seen.append(trial.params)
    return trials


def tune_method(tune: TuneConfig, storage, method: str) -> int:
    """Run the trials ``method`` still needs; returns how many ran."""
    study = open_study(tune, storage, method)
    todo = tune.trials - len(completed(study))
    if todo <= 0:
        return 0
    retry_unfinished(study, storage)
    study.optimize(objective(tune, method), n_trials=todo, catch=())
    return todo


# ----- results ----------------------------------------------------------------------------------------------------


def studies(storage) -> dict:
    """Every study of the storage by method, in the order the package registers the methods."""
    optuna = import_optuna()
    names = set(optuna.get_all_study_names(storage))
    return {m: optuna.load_study(study_name=m, storage=storage) for m in METHODS if m in names}


def trial_rows(storage) -> list[dict]:
    """One row per completed trial of every method: its parameters (empty where not searched), objective, the
    validation return of each tuning seed, the seeds, oversight and budget, and whether it is the method's best."""
    rows = []
    for method, study in studies(storage).items():
        tuning = study.user_attrs["tuning"]
        trials = completed(study)
        best = max(trials, key=lambda t: t.value).number if trials else None
        for trial in trials:
            row = {"method": method, "trial": trial.number}
            row.update({name: trial.params.get(name) for name in SPACE})
            row["objective"] = trial.value
            row["validation_returns"] = " ".join(f"{r:.4f}" for r in trial.user_attrs["validation_returns"])
            row["seeds"] = " ".join(map(str, tuning["seeds"]))
            row.update(oversight=tuning["oversight"], total_env_steps=tuning["train"]["total_env_steps"])
            row.update(trials=len(trials), best=trial.number == best)
            rows.append(row)
    return rows


def preset_entries(storage, fewest: int) -> dict[str, dict]:
    """Each tuned method's best setting: every training setting (``settings``) and where it came from; a method
    with fewer than ``fewest`` completed trials has none yet (its tuning is unfinished)."""
    entries = {}
    for method, study in studies(storage).items():
        trials = completed(study)
        if len(trials) < fewest:
            continue
        best, tuning = max(trials, key=lambda t: t.value), study.user_attrs["tuning"]
        entries[method] = {
            "settings": {**tuning["train"], **best.params},
            "tuned": best.params,
            "objective": best.value,
            "objective_is": "mean final deployed true_return on validation episodes over the tuning seeds",
            "trial": best.number,
            "trials": len(trials),
            "oversight": tuning["oversight"],
            "seeds": tuning["seeds"],
        }
    return entries


def write_presets(entries: dict[str, dict], path: Path) -> Path:
    """Merge ``entries`` into the preset file: tuned methods replace their entry, the others are kept."""
    path = Path(path)
    methods = {**(json.loads(path.read_text())["methods"] if path.exists() else {}), **entries}
    order = [*METHODS, *sorted(methods)]
    content = {
        "about": "each method's best setting found by tune_methods.py; read by --preset tuned",
        "methods": dict(sorted(methods.items(), key=lambda item: order.index(item[0]))),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, (json.dumps(content, indent=2) + "\n").encode())
    return path


def run_tuning(tune: TuneConfig) -> dict[str, int]:
    """Validate, lock the tuning directory, run every method's remaining trials, then write the trial table and the
    presets. Returns the number of trials run per method. Raises ``DirectoryBusy`` (a ``ValueError``), having
    written nothing, while another tuning runs in the same directory."""
    tune.validate()
    import_optuna()  # before the lock file: a missing Optuna writes nothing
    Path(tune.out).mkdir(parents=True, exist_ok=True)
    with directory_lock(Path(tune.out), "tuning"):
        return run_locked(tune)


def run_locked(tune: TuneConfig) -> dict[str, int]:
    """:func:`run_tuning` once its directory is locked."""
    storage = storage_of(tune)
    ran = {method: tune_method(tune, storage, method) for method in tune.methods}
    rows, presets = trial_rows(storage), preset_entries(storage, tune.trials)
    targets = [(tune.csv_path, tune.presets_path)] + ([(PUBLISHED_CSV, TUNED_PRESETS)] if tune.publish else [])
    for csv_path, presets_path in targets:
        csv_path.parent.mkdir(parents=True, exist_ok=True)
        write_csv(csv_path, merged_rows(csv_path, rows))
        write_presets(presets, presets_path)
    return ran


def merged_rows(path: Path, rows: list[dict]) -> list[dict]:
    """The trial table at ``path`` with the rows of the methods in ``rows`` replaced by those, in place, and the
    other methods' rows kept as written (a study that tunes one method publishes that method alone)."""
    by_method: dict[str, list[dict]] = {}
    for row in rows:
        by_method.setdefault(row["method"], []).append(row)
    with path.open(newline="") if path.exists() else io.StringIO() as file:  # as written: no number reformatted
        merged = []
        for row in csv.DictReader(file):
            if row["method"] not in by_method:
                merged.append(row)
            elif not any(kept["method"] == row["method"] for kept in merged):
                merged += by_method[row["method"]]  # the new rows where the method's first row was
    placed = {row["method"] for row in merged}
    return merged + [row for method, new in by_method.items() if method not in placed for row in new]
