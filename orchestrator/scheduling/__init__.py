"""Scheduled entries: journeys that admit an audience at set times (cron or a date)."""

from .cron import Cron, CronError
from .scheduler import Scheduler, due_times

__all__ = ["Cron", "CronError", "Scheduler", "due_times"]
