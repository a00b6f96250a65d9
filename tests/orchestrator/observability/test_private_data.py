"""Nothing private reaches the logs: real ingest and real sends, logging as the CLI sets it
up at the default level, and the output searched for every secret, address, number and
message text the test used."""

from __future__ import annotations

import json
import re

from journeyman.orchestrator.embedded import TemporalDevServer

from .conftest import Capture
from .pipeline import ACCOUNT_SID, ADMIN_TOKEN, AUTH_TOKEN, WRITE_KEY, running_pipeline

ANA = {"email": "ana.lee@example.com", "phone": "+886912000001"}
BO = {"email": "bo.chen@example.org", "phone": "+886912000002"}
WRONG_KEY = "wk_stolen_0123456789"
WRONG_TOKEN = "adm_guess_0123456789"


async def test_ingest_and_sends_log_no_personal_data_or_secret(
    captured_logs: Capture, database_url: str, temporal_dev_server: TemporalDevServer
) -> None:
    as_json = captured_logs("json")
    as_text = captured_logs("text")
    # Secrets are deliberately not registered for masking here: the code must not log them
    # in the first place (masking by value is a second line, tested on its own).
    async with running_pipeline(database_url, temporal_dev_server.address) as p:
        # Twilio is down for a moment and its error quotes the recipient, as real providers'
        # errors do: the worker logs the failed attempt with the provider's message.
        p.twilio.answer_next(
            503,
            {"code": 20503, "message": f"Queue full for {ANA['phone']} ({ANA['email']})"},
        )
        p.twilio.landlines.add(BO["phone"])  # refused for good
        consent = {"sms": True}
        await p.sign_up("ana", first_name="Ana", consent=consent, **ANA)
        await p.sign_up("bo", first_name="Bo", consent=consent, **BO)

        # Ingest that goes wrong: a stolen write key, a guessed admin token, messages
        # that are not valid while carrying personal data.
        wrong = await p.http.post(
            "/v1/track",
            json={"userId": "ana", "event": "Signed Up"},
            auth=(WRONG_KEY, ""),
        )
        assert wrong.status_code == 401
        guessed = await p.http.get(
            "/api/journeys", headers={"Authorization": f"Bearer {WRONG_TOKEN}"}
        )
        assert guessed.status_code == 401
        invalid = await p.send("/v1/identify", {"traits": {"email": BO["email"]}})
        assert invalid.status_code == 400
        batch = await p.send(
            "/v1/batch",
            {
                "batch": [
                    {"type": "identify", "userId": "bo", "traits": {"phone": BO["phone"]}},
                    {"type": "track", "event": "No user", "properties": {"to": ANA["email"]}},
                ]
            },
        )
        assert batch.status_code == 200 and len(batch.json()["rejected"]) == 1
        await p.finished(2)
        assert len(p.sink.messages) == 2 and len(p.twilio.created) == 1

    json_out, text_out = as_json.getvalue(), as_text.getvalue()
    entries = [json.loads(line) for line in json_out.splitlines()]
    # The retried send was logged (with context), so the private data had its chance.
    [failed] = [e for e in entries if e["message"].startswith("Completing activity as failed")]
    assert failed["level"] == "WARNING" and "<phone> (<email>)" in failed["exception"]
    assert (failed["journey_id"], failed["customer_id"], failed["step_id"]) == (
        "observed-welcome",
        "ana",
        "hello-sms",
    )
    assert failed["send_key"] and failed["version"]
    assert failed["workflow_id"].endswith("ana") and failed["run_id"]

    forbidden = [
        WRITE_KEY,
        ADMIN_TOKEN,
        AUTH_TOKEN,
        ACCOUNT_SID,
        WRONG_KEY,
        WRONG_TOKEN,
        *ANA.values(),
        *BO.values(),
        *(number.lstrip("+") for number in (ANA["phone"], BO["phone"])),
        "Hi Ana, welcome!",  # message bodies and subjects
        "Welcome Ana",
        "Welcome Bo",
    ]
    for output in (json_out, text_out):
        assert output, "nothing was logged: the test saw nothing"
        leaked = [value for value in forbidden if value in output]
        assert leaked == []
        assert not re.search(r"[\w.+-]+@[\w-]+\.[\w.]+", output), "an e-mail address"
