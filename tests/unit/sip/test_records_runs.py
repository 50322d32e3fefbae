"""Call-record changes are sent in runs of one kind, never reordered."""

from __future__ import annotations

from assistline.sip.records import runs


def test_consecutive_changes_of_one_kind_share_a_run_and_order_is_kept() -> None:
    batch: list[tuple[str, tuple[object, ...]]] = [
        ("insert_call_record", ("w1-1",)),
        ("insert_call_record", ("w1-2",)),
        ("answer_call_record", ("w1-2",)),
        ("answer_call_record", ("w1-1",)),
        ("end_call_record", ("w1-1", 200, "")),
        ("insert_call_record", ("w1-1",)),  # a restarted worker's new leg w1-1
        ("end_call_record", ("w1-2", 200, "")),
    ]
    assert runs(batch) == [
        ("insert_call_record", [("w1-1",), ("w1-2",)]),
        ("answer_call_record", [("w1-2",), ("w1-1",)]),
        ("end_call_record", [("w1-1", 200, "")]),
        ("insert_call_record", [("w1-1",)]),
        ("end_call_record", [("w1-2", 200, "")]),
    ]


def test_no_changes_no_runs() -> None:
    assert runs([]) == []
