"""A batch of events -> partial rows by table, and the work left for recomputation."""

from __future__ import annotations

from projections.batch import batch_rows
from tests.projections.story import OUT_CALL, sample
from tests.projections.test_rows import event


def test_batch_rows_collect_work_for_recomputation() -> None:
    rows = batch_rows(
        [
            event("CallStatusEvent", sample("CallStatusEvent", status="HOLD"), n=1),
            event("sendDtmf", sample("sendDtmf"), n=2),
            event("submitBugReport", sample("submitBugReport"), n=3),
            event("pushLogs", sample("pushLogs"), n=4),
            event("sessionDebug", sample("sessionDebug"), n=5),
        ]
    )
    assert rows.hold_calls == {OUT_CALL}
    assert len(rows.sessions) == 5
    assert len(rows.calls) == 2
    (bug,) = rows.bug_reports
    assert bug["report"] == {
        "text": "No video from remote party during call 8b3f4a50",
        "type": "no_media",
    }
    (push,) = rows.client_log_pushes
    assert (push["lines"], push["bytes"]) == (2, 159)
    (debug,) = rows.session_debug
    assert (debug["hook"], debug["value"]) == ("sessionDebug", "start")
