"""Moved to :mod:`oversight_rl.engine.launch`; this alias keeps old imports working for one release."""

from oversight_rl.engine.launch import *  # noqa: F403
