"""The sweep command docs/results.md prints for each part, stating the hardware its runs were trained on.

A part's section shows the ``sweep_oversight.py`` command that trains (or resumes) it alone, under the default
``--root`` and with ``--device`` set to the device its runs were trained on, not to this invocation's: the runs'
own records say which (:func:`recorded_devices`), and for a part kept as committed, whose runs are not here, the
record :attr:`~oversight_rl.study.reproduce.Part.trained_on` does. A part whose runs were resumed on another device
gets a comment naming it.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from oversight_rl.analysis import report
from oversight_rl.rundir.files import CONFIG, SWEEP_JSON, read_json
from oversight_rl.study.reproduce import Part, ReproduceConfig, command_line, sweep_dir


def published_command(part: Part, config: ReproduceConfig, device: str | None = None) -> str:
    """The part's sweep command as results.md shows it: under the default --root (``sweeps/PART``), wherever this
    machine keeps the runs, so that the docs hold no local path, and with ``--device device`` (the device its runs
    were trained on) instead of this invocation's."""
    shown = dataclasses.replace(config, root=ReproduceConfig.root, device=device or config.device)
    return command_line(part, shown)


def command_block(part: Part, config: ReproduceConfig, devices: tuple[str, ...]) -> str:
    """The part's sweep command as a code block, on the first of ``devices``, and a comment naming the devices its
    runs were resumed on."""
    lines = ["```bash", published_command(part, config, devices[0])]
    if len(devices) > 1:
        resumed = " and then ".join(f"--device {device}" for device in devices[1:])
        lines.append(
            f"# its runs were started with --device {devices[0]} and resumed from their checkpoints with {resumed}"
        )
    return "\n".join([*lines, "```"])


def recorded_devices(directory: Path) -> tuple[str, ...]:
    """The devices the runs of a sweep directory were trained on, in order: each run's config.json keeps the device
    it was started on, and sweep.json the device of the sweep's last invocation (which may have resumed the runs on
    another). Empty without a readable record."""
    records = [(path, ("device",)) for path in sorted(Path(directory).glob(f"*/{CONFIG}"))]
    records.append((Path(directory) / SWEEP_JSON, ("train", "device")))
    devices = []
    for path, keys in records:
        try:
            value = read_json(path) if path.is_file() else {}
        except (OSError, ValueError):  # an unreadable record says nothing
            continue
        for key in keys:
            value = value.get(key) if isinstance(value, dict) else None
        if isinstance(value, str) and value not in devices:
            devices.append(value)
    return tuple(devices)


def published_devices(part: Part, config: ReproduceConfig, kept: bool = False) -> tuple[str, ...]:
    """The devices results.md's command states for ``part``: those its committed runs were trained on
    (:attr:`~oversight_rl.study.reproduce.Part.trained_on`) where its section is kept as committed, else those its
    sweep directory records (those of all its sweeps, for a part of several); this invocation's --device where neither
    names one."""
    if kept:
        devices = part.trained_on
    else:  # a part of several sweeps: the devices each records, in order
        sweeps = part.sweeps() or [part]
        devices = tuple(dict.fromkeys(d for sweep in sweeps for d in recorded_devices(sweep_dir(sweep, config))))
    return devices or (config.device,)


def kept_section(text: str, part: Part, config: ReproduceConfig) -> str | None:
    """A kept part's committed section, its tables and figures as they are, with its command restated
    (:func:`command_block`, on the devices its committed runs were trained on); None when ``text`` has none."""
    body = report.generated_section(text, part.name)
    if body is None:
        return None
    block = command_block(part, config, published_devices(part, config, kept=True))
    return re.sub(r"```bash\n.*?\n```", lambda match: block, body, count=1, flags=re.S)
