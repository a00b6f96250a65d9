"""What every report route shares: JSON or CSV, the attribution window, the journey's plan.

A report answers JSON, or CSV (a header row, then one row per item) with ``?format=csv`` or an
``Accept: text/csv`` header.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import asdict, fields
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any

from fastapi import Request, Response
from pydantic import BeforeValidator

from journeyman.orchestrator.storage import list_journeys, load_plan
from journeyman.workflows.plan import Plan, SendStep, walk

from .errors import ApiError

MAX_WINDOW = timedelta(days=365)
_DURATION = re.compile(r"^(\d{1,9})([smhd]?)$")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")

# How a report route declares its CSV answer beside the JSON one in the OpenAPI document.
CSV_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/csv": {"schema": {"type": "string"}}}},
}


def _iso_date_time(value: object) -> object:
    """Refuse what is not ISO 8601: pydantic alone would read ``15`` as a Unix time."""
    if isinstance(value, str) and not _ISO_DATE.match(value):
        raise ValueError("expected an ISO 8601 date-time, e.g. 2025-06-12T09:00:00Z")
    return value


def _iso_date(value: object) -> object:
    """Refuse what is not an ISO 8601 date: pydantic alone would read numbers as Unix times."""
    if isinstance(value, str) and not _ISO_DATE.fullmatch(value):
        raise ValueError("expected an ISO 8601 date, e.g. 2025-06-12")
    return value


IsoDateTime = Annotated[datetime | None, BeforeValidator(_iso_date_time)]
IsoDate = Annotated[date | None, BeforeValidator(_iso_date)]


def wants_csv(request: Request, format: str | None) -> bool:
    """Whether the caller asked for CSV; 400 for a format other than json or csv."""
    if format is not None:
        if format not in ("json", "csv"):
            raise ApiError(400, "invalid_request", "format must be 'json' or 'csv'")
        return format == "csv"
    return "text/csv" in request.headers.get("accept", "").lower()


def csv_response(rows: list[Any], kind: type[Any], filename: str) -> Response:
    """One header row (the dataclass's fields), then a row per item."""
    names = [f.name for f in fields(kind)]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(names)
    for row in rows:
        values = asdict(row)
        writer.writerow(
            [
                values[n].isoformat()
                if isinstance(values[n], datetime)
                else ("" if values[n] is None else values[n])
                for n in names
            ]
        )
    return Response(
        out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def parse_window(text: str) -> timedelta:
    """``7d``, ``36h``, ``90m``, ``600s`` or plain seconds; 400 for anything else."""
    match = _DURATION.match(text.strip())
    if match is None:
        raise ApiError(
            400, "invalid_request", "window must be a number with s, m, h or d, e.g. 7d or 36h"
        )
    window = timedelta(seconds=int(match[1]) * _UNIT_SECONDS[match[2]])
    if not timedelta(0) < window <= MAX_WINDOW:
        raise ApiError(400, "invalid_request", "window must be over 0 and at most 365d")
    return window


def as_utc(moment: datetime) -> datetime:
    # A time without an offset is read as UTC, the zone report buckets are cut in.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


async def journey_plan(services: Any, journey_id: str, version: str | None) -> Plan:
    """The plan of the version asked for, or the active one; 404 for an unknown either."""
    summaries = {j.journey_id: j for j in await list_journeys(services.pool)}
    summary = summaries.get(journey_id)
    if summary is None:
        raise ApiError(404, "not_found", f"no journey {journey_id!r} is deployed")
    if version is not None and version not in summary.versions:
        raise ApiError(404, "not_found", f"journey {journey_id!r} has no version {version!r}")
    return await load_plan(
        services.pool, journey_id=journey_id, version=version or summary.active_version
    )


def send_steps(plan: Plan) -> list[tuple[str, str, str]]:
    """(step id, stage, channel) of every send step, nested ones included, in document order."""
    return [
        (step.id, stage.name, step.channel)
        for stage in plan.stages
        for step in walk(stage.steps)
        if isinstance(step, SendStep)
    ]
