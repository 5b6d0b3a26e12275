"""Local development: `make run`. Same defaults as production except DEBUG may be asked for."""

from .base import *  # noqa: F403
