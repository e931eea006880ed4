"""Moved to :mod:`oversight_rl.core.losses`; this alias keeps old imports working for one release."""

from oversight_rl.core.losses import *  # noqa: F403
