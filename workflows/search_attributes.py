"""Custom search attributes the journey workflow sets, so Temporal can list runs by stage.

They must be registered on the namespace before any workflow uses them, or workflow tasks
retry forever; the embedded dev server registers them at start and the worker checks again.
"""

from __future__ import annotations

from temporalio.common import SearchAttributeKey

JOURNEY_ID = SearchAttributeKey.for_keyword("JourneyId")
CUSTOMER_ID = SearchAttributeKey.for_keyword("CustomerId")
JOURNEY_STAGE = SearchAttributeKey.for_keyword("JourneyStage")
# The step a run waits at (wait or wait_for), for "how many customers are where" and migrations.
JOURNEY_STEP = SearchAttributeKey.for_keyword("JourneyStep")

ALL = (JOURNEY_ID, CUSTOMER_ID, JOURNEY_STAGE, JOURNEY_STEP)
