"""Fault injection: a full or read-only disk, and reproduce_results.py's flags. What must hold: a write that fails
leaves the file it replaced and no temporary file; a script ends in one ``error:`` line naming the file and the cause
(no traceback); a run keeps its last good checkpoint and resumes from it, in a sweep too. A full disk is simulated
in this process (write(2) fails midway with ENOSPC); a read-only directory by its mode, or, for root (whom modes do
not stop), by refusing in this process what the kernel would refuse. Budgets are tiny: these check plumbing."""

from __future__ import annotations

import errno
import fnmatch
import os
import shutil
from pathlib import Path

import pytest
import torch
from cli import load_script
from test_faults import ONE_RUN, TINY, one_error_line, same_run, snapshot, stderr_lines, sweep, temporaries

from oversight_rl.rundir import files as files_module
from oversight_rl.rundir.files import CHECKPOINT, SUMMARY, SWEEP_JSON, read_json, write_json
from oversight_rl.rundir.status import run_status

train_cli = load_script("train_policy")
sweep_cli = load_script("sweep_oversight")
plot_cli = load_script("plot_curves")
reproduce_cli = load_script("reproduce_results")

NO_SPACE, DENIED = os.strerror(errno.ENOSPC), os.strerror(errno.EACCES)


class HalfWriter:
    """A file on a full disk: a write stores half its bytes, then fails as write(2) does (ENOSPC, no file name)."""

    def __init__(self, file):
        self.file = file

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.file.close()

    def write(self, data: bytes) -> int:
        self.file.write(data[: len(data) // 2])
        raise OSError(errno.ENOSPC, NO_SPACE)


class FullDisk:
    """``os`` as :mod:`oversight_rl.rundir.files` sees it once the disk is full: a write of a file whose path matches
    the glob ``files`` fails midway, once ``first`` writes of the files matching ``counted`` (default: ``files``) have
    begun."""

    def __init__(self, files: str, first: int = 1, counted: str | None = None):
        self.files, self.counted, self.first = files, counted or files, first
        self.writes, self.opened = 0, {}

    def __getattr__(self, name):
        return getattr(os, name)

    def open(self, path, flags, mode=0o777):
        fd = os.open(path, flags, mode)
        tmp = Path(path)  # .checkpoint.pt.<random>.tmp, beside the file it replaces
        self.opened[fd] = str(tmp.with_name(tmp.name.removeprefix(".").rsplit(".", 2)[0]))
        return fd

    def fdopen(self, fd, mode="r"):
        file, path = os.fdopen(fd, mode), self.opened.pop(fd, "")
        self.writes += fnmatch.fnmatch(path, self.counted)
        return HalfWriter(file) if self.writes >= self.first and fnmatch.fnmatch(path, self.files) else file


def fill_disk(monkeypatch, files: str, first: int = 1, counted: str | None = None) -> None:
    monkeypatch.setattr(files_module, "os", FullDisk(files, first, counted))


@pytest.fixture
def read_only(monkeypatch):
    """``read_only(directory)`` makes nothing be created, renamed or removed in ``directory`` (its files can still
    be read): by its mode, or for root by refusing it in this process, as the kernel would (EACCES)."""
    chmodded = []

    def refuse_in(directory: Path) -> None:
        if os.geteuid() != 0:
            directory.chmod(0o555)
            chmodded.append(directory)
            return
        directory = directory.absolute()

        def refused(path) -> OSError | None:
            path = Path(os.fsdecode(path)).absolute()
            return OSError(errno.EACCES, DENIED, str(path)) if path.parent == directory else None

        real_open, real_mkdir, real_replace = os.open, os.mkdir, os.replace

        def open_(path, flags, *args, **kwargs):
            if flags & os.O_CREAT and not os.path.exists(path) and refused(path):
                raise refused(path)
            return real_open(path, flags, *args, **kwargs)

        def mkdir(path, *args, **kwargs):
            if refused(path):
                raise refused(path)
            return real_mkdir(path, *args, **kwargs)

        def replace(source, target, *args, **kwargs):
            if refused(source) or refused(target):
                raise refused(source) or refused(target)
            return real_replace(source, target, *args, **kwargs)

        for name, fake in (("open", open_), ("mkdir", mkdir), ("replace", replace)):
            monkeypatch.setattr(os, name, fake)

    yield refuse_in
    for directory in chmodded:
        directory.chmod(0o755)


def checkpoint_update(run_dir: Path) -> int:
    return torch.load(run_dir / CHECKPOINT, weights_only=False)["counters"][0]


def run_files(run_dir: Path) -> dict[str, tuple[int, int]]:
    """:func:`snapshot` of a run directory but its lock, which a resume takes (writing its process id) as it starts."""
    return {name: stat for name, stat in snapshot(run_dir).items() if not name.endswith(".lock")}


def error_of(stderr: str, bar: str) -> str:
    """The one ``error:`` line a script printed to stderr besides its progress bar, and no traceback."""
    assert "Traceback" not in stderr, stderr
    (line,) = stderr_lines(stderr, bar)
    assert line.startswith("error: "), stderr
    return line


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Path:
    """A finished tiny sweep of ``ONE_RUN`` (``TINY``: checkpoints at updates 8 and 16)."""
    out = tmp_path_factory.mktemp("uninterrupted") / "sweep"
    assert sweep(out, *TINY, *ONE_RUN, "--workers", "1") == 0
    return out


@pytest.fixture(scope="module")
def single_run(tmp_path_factory) -> Path:
    """A finished tiny run of train_policy.py (``TINY``, oversight 0.5: checkpoints at updates 8 and 16)."""
    out = tmp_path_factory.mktemp("single")
    assert train_cli.main([*TINY, "--oversight", "0.5", "--out", str(out)]) == 0
    (run_dir,) = out.iterdir()
    return run_dir


# ----- one write ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["full", "read-only"])
def test_a_failed_write_keeps_the_old_file_names_it_and_leaves_no_temporary(tmp_path, monkeypatch, read_only, how):
    path = tmp_path / "summary.json"
    write_json(path, {"updates": 8})
    fill_disk(monkeypatch, str(path)) if how == "full" else read_only(tmp_path)
    with pytest.raises(OSError) as failed:
        write_json(path, {"updates": 16})
    assert failed.value.filename == str(path) and failed.value.strerror == (NO_SPACE if how == "full" else DENIED)
    assert read_json(path) == {"updates": 8} and temporaries(tmp_path) == []


# ----- single runs and resume ---------------------------------------------------------------------------------------


def test_a_run_whose_checkpoint_cannot_be_written_is_one_line_and_resumes_from_its_last(
    tmp_path, monkeypatch, capsys, single_run
):
    out = tmp_path / "runs"
    fill_disk(monkeypatch, f"{out}/*/{CHECKPOINT}", first=2)  # the checkpoint of update 8 is written, not 16's
    assert train_cli.main([*TINY, "--oversight", "0.5", "--out", str(out)]) == 2
    (run_dir,) = out.iterdir()
    assert error_of(capsys.readouterr().err, "routing") == f"error: {run_dir / CHECKPOINT}: {NO_SPACE}"
    assert checkpoint_update(run_dir) == 8 and temporaries(run_dir) == []
    monkeypatch.undo()
    assert train_cli.main(["--resume", str(run_dir)]) == 0
    same_run(run_dir, single_run)


def test_a_run_in_a_read_only_out_is_one_line_and_writes_nothing(tmp_path, capsys, read_only):
    out = tmp_path / "runs"
    out.mkdir()
    read_only(out)
    assert train_cli.main([*TINY, "--oversight", "0.5", "--out", str(out)]) == 2
    error = one_error_line(capsys.readouterr().err)
    assert error.startswith(f"error: {out}/routing-p0.5-s0-") and error.endswith(f": {DENIED}")
    assert list(out.iterdir()) == []


def test_resuming_a_read_only_run_is_one_line_and_changes_nothing(tmp_path, capsys, read_only, uninterrupted):
    run_dir = Path(shutil.copytree(uninterrupted / "routing-p0.5-s0", tmp_path / "run"))
    (run_dir / SUMMARY).unlink()  # interrupted after its last checkpoint
    before = run_files(run_dir)
    read_only(run_dir)
    assert train_cli.main(["--resume", str(run_dir)]) == 2
    assert error_of(capsys.readouterr().err, "routing") == f"error: {run_dir / 'train.csv'}: {DENIED}"
    assert run_files(run_dir) == before


# ----- sweeps -------------------------------------------------------------------------------------------------------


def test_a_sweep_that_cannot_write_sweep_json_is_one_line(tmp_path, monkeypatch, capsys):
    out = tmp_path / "sweep"
    fill_disk(monkeypatch, str(out / SWEEP_JSON))
    assert sweep(out, *TINY, *ONE_RUN) == 2
    assert one_error_line(capsys.readouterr().err) == f"error: {out / SWEEP_JSON}: {NO_SPACE}"
    assert temporaries(out) == [] and not (out / SWEEP_JSON).exists()


def test_a_sweep_in_a_read_only_out_is_one_line(tmp_path, capsys, read_only):
    out = tmp_path / "sweep"
    out.mkdir()
    read_only(out)
    assert sweep(out, *TINY, *ONE_RUN) == 2
    assert one_error_line(capsys.readouterr().err) == f"error: {out / 'sweep.lock'}: {DENIED}"
    assert list(out.iterdir()) == []


@pytest.mark.parametrize("every_file", [False, True], ids=["checkpoint", "every-file"])
def test_a_sweep_run_that_cannot_write_keeps_its_last_checkpoint_and_resumes_from_it(
    tmp_path, monkeypatch, capsys, uninterrupted, every_file
):
    """The disk fills at the run's second checkpoint (for that file, or for every file of the sweep from then on:
    error.json, results.csv): the sweep says which file could not be written, and the next sweep resumes the run
    from its first checkpoint (it does not start it again) to the uninterrupted result."""
    out = tmp_path / "sweep"
    run_dir = out / "routing-p0.5-s0"
    checkpoint = str(run_dir / CHECKPOINT)
    fill_disk(monkeypatch, f"{out}/*" if every_file else checkpoint, first=2, counted=checkpoint)
    status = sweep(out, *TINY, *ONE_RUN, "--workers", "1")
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err and checkpoint_update(run_dir) == 8 and temporaries(out) == []
    if not every_file:  # results.csv is written: the summary line names the run, the file and the cause
        assert status == 1 and f"1 failed (routing-p0.5-s0: {run_dir / CHECKPOINT}: {NO_SPACE})" in captured.out
    else:  # not even results.csv can be written
        assert status == 2 and error_of(captured.err, "sweep") == f"error: {out / 'results.csv'}: {NO_SPACE}"
    assert run_status(run_dir) == "interrupted"
    monkeypatch.undo()
    assert sweep(out, *TINY, *ONE_RUN, "--workers", "1") == 0
    assert "0 trained, 1 resumed, 0 already done, 0 failed" in capsys.readouterr().out
    same_run(run_dir, uninterrupted / run_dir.name)


# ----- plot_curves.py -----------------------------------------------------------------------------------------------


def test_plotting_into_a_read_only_directory_is_one_line(tmp_path, capsys, read_only, uninterrupted):
    out = tmp_path / "figures"
    out.mkdir()
    read_only(out)
    assert plot_cli.main([str(uninterrupted), "--out", str(out)]) == 2
    assert one_error_line(capsys.readouterr().err) == f"error: {out / 'results.csv'}: {DENIED}"
    assert list(out.iterdir()) == []


def test_a_figure_that_cannot_be_written_is_one_line_and_leaves_no_partial_file(
    tmp_path, monkeypatch, capsys, uninterrupted
):
    out = tmp_path / "figures"
    fill_disk(monkeypatch, f"{out}/*.png")
    assert plot_cli.main([str(uninterrupted), "--out", str(out)]) == 2
    error = one_error_line(capsys.readouterr().err)
    assert error.startswith(f"error: {out}/") and error.endswith(f".png: {NO_SPACE}")
    assert not list(out.glob("*.png")) and temporaries(out) == []


# ----- reproduce_results.py's flags ---------------------------------------------------------------------------------


@pytest.fixture
def docs(tmp_path) -> Path:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "results.md").write_text("# Results\n\n<!-- generated: claims -->\n<!-- end generated -->\n")
    return docs


@pytest.mark.parametrize("mode", [[], ["--skip-training"], ["--dry-run"]], ids=["train", "skip-training", "dry-run"])
def test_reproduce_refuses_a_bad_device_before_anything_is_written(tmp_path, capsys, docs, mode):
    before, root = snapshot(docs), tmp_path / "sweeps"
    argv = ["--device", "bogus", "--root", str(root), "--docs", str(docs), *mode]
    assert reproduce_cli.main(argv) == 2
    assert "--device must be cpu, cuda[:N] or mps, got 'bogus'" in one_error_line(capsys.readouterr().err)
    assert snapshot(docs) == before and not root.exists()


def test_reproduce_publishes_commands_without_the_local_root(tmp_path, docs):
    root = tmp_path / "elsewhere" / "sweeps"
    assert reproduce_cli.main(["--skip-training", "--root", str(root), "--docs", str(docs)]) == 0
    text = (docs / "results.md").read_text()
    assert str(tmp_path) not in text and "--out sweeps/main-default --oversight" in text
