"""Moved to :mod:`oversight_rl.engine.config`; this alias keeps old imports working for one release."""

from oversight_rl.engine.config import *  # noqa: F403
