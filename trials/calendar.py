"""The calendar file (.ics) of a visit's window: one event, times in UTC.

No Django import: the view translates the texts and passes them in.
"""

import hashlib
from datetime import datetime, timedelta

from icalendar import Alarm, Calendar, Event

# A window that never closes still needs an end in a calendar: its first hour.
OPEN_ENDED = timedelta(hours=1)


def visit_calendar(
    *,
    token: str,
    order: int,
    summary: str,
    description: str,
    url: str,
    opens_at: datetime,
    closes_at: datetime | None,
    now: datetime,
) -> bytes:
    """An iCalendar file with the window as one event and an alarm when it opens."""
    calendar = Calendar()
    calendar.add("prodid", "-//belief-web//visits//EN")
    calendar.add("version", "2.0")
    calendar.add("method", "PUBLISH")
    event = Event()
    # Stable across downloads (a calendar updates rather than duplicates the event), and
    # without the token itself: calendars sync UIDs to places the link should not go.
    digest = hashlib.sha256(token.encode()).hexdigest()[:24]
    event.add("uid", f"{digest}-{order}@belief-web")
    event.add("dtstamp", now)
    event.add("dtstart", opens_at)
    event.add("dtend", closes_at if closes_at is not None else opens_at + OPEN_ENDED)
    event.add("summary", summary)
    event.add("description", f"{description}\n{url}")
    event.add("url", url)
    alarm = Alarm()
    alarm.add("action", "DISPLAY")
    alarm.add("description", summary)
    alarm.add("trigger", timedelta(0))
    event.add_component(alarm)
    calendar.add_component(event)
    return bytes(calendar.to_ical())
