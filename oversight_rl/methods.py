"""Moved to :mod:`oversight_rl.core.methods`; this alias keeps old imports working for one release."""

from oversight_rl.core.methods import *  # noqa: F403
