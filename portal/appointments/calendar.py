"""Working days of a fund office: public holidays (national, Alsace-Moselle, overseas)."""

from datetime import date, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import holidays

# The `holidays` package's subdivisions of France that have their own days.
HOLIDAY_SUBDIVISIONS = {
    "57": "57",  # Moselle: Good Friday, Saint Stephen's Day
    "67": "6AE",  # Bas-Rhin (Alsace)
    "68": "6AE",  # Haut-Rhin (Alsace)
    "971": "971",
    "972": "972",
    "973": "973",
    "974": "974",
    "976": "976",
}


def holiday_subdivision(department: str) -> str | None:
    return HOLIDAY_SUBDIVISIONS.get(department)


@lru_cache(maxsize=512)
def public_holidays(department: str, year: int) -> frozenset[date]:
    """The public holidays of `year` in `department` (national days included)."""
    days = holidays.country_holidays("FR", subdiv=holiday_subdivision(department), years=year)
    return frozenset(days)


def is_public_holiday(department: str, day: date) -> bool:
    return day in public_holidays(department, day.year)


def is_working_day(department: str, day: date) -> bool:
    return day.weekday() < 5 and not is_public_holiday(department, day)


def first_bookable_day(department: str, today: date, notice_working_days: int) -> date:
    """The first day at least `notice_working_days` working days after `today`.

    With the default notice of 1, a member booking on Friday gets Monday at
    the earliest (Tuesday if Monday is a holiday).
    """
    day = today
    left = notice_working_days
    while left > 0:
        day += timedelta(days=1)
        if is_working_day(department, day):
            left -= 1
    return day


def zone(cpam) -> ZoneInfo:
    return ZoneInfo(cpam.time_zone or "Europe/Paris")
