"""Audit batches in a session: `next --audit N`, the status fields that claim a confidence level,
and stop rules that do not say stop from a degenerate statistic."""

from __future__ import annotations

import json

import numpy as np
import pytest

from raresift.cli import main
from raresift.errors import ValidationError
from raresift.session import Session
from raresift.session.status import stabilizing_predictions

N, DIM = 2500, 12


@pytest.fixture
def project(tmp_path):
    rng = np.random.default_rng(5)
    x = rng.normal(size=(N, DIM)).astype(np.float32)
    y = (x[:, 0] > 2.0).astype(int)  # about 2 % positive
    x[y == 1, 1:4] += 1.5
    np.save(tmp_path / "emb.npy", x)
    s = Session.create(tmp_path / "p", embeddings=tmp_path / "emb.npy", concept="c", progress=False)
    s.truth = y
    return s


def _answer(s, batch):
    s.answer_many([(b.id, int(s.truth[b.id])) for b in batch])


def test_audit_batch_stores_its_strata_and_inclusion_probabilities(project):
    s = project
    for _ in range(3):
        _answer(s, s.next(budget=60))
    labeled = {r["id"] for r in s.answers()}
    audit = s.next(audit=150)
    info = s.round_info()
    design = info["options"]["design"]
    assert info["strategy"] == "audit" and len(audit) == 150
    assert not labeled & {b.id for b in audit}  # drawn from the unlabeled items only
    assert sum(st["size"] for st in design["strata"]) == N - len(labeled)
    assert sum(st["drawn"] for st in design["strata"]) == 150
    for b, h in zip(audit, design["stratum_of"], strict=True):
        st = design["strata"][h]
        assert b.score == pytest.approx(st["drawn"] / st["size"])  # inclusion probability
        assert b.reason.startswith("audit: random pick") and f"stratum {h + 1} of" in b.reason
    # asked again, or half answered and asked again: the same audit
    assert [b.id for b in s.next(audit=150)] == [b.id for b in audit]
    _answer(s, audit[:70])
    assert [b.id for b in s.next(audit=150)] == [b.id for b in audit]
    # audit answers train the next model like any answer
    _answer(s, audit[70:])
    assert s.next(budget=20)[0].round == info["round"] + 1
    assert s.round_info()["n_labeled"] == len(labeled) + 150


def test_status_certifies_from_the_audit_and_holds_the_truth(project):
    s = project
    for _ in range(4):
        _answer(s, s.next(budget=60))
    before = s.status()
    assert before["recall"] is not None  # the random first batch is a one-stratum sample
    assert "random picks of round 1" in before["positives_left"]["method"]
    audit = s.next(audit=200)
    _answer(s, audit)
    status = s.status()
    found, total = status["positives_found"], int(s.truth.sum())
    left = status["positives_left"]
    assert set(left) == {"estimate", "low", "high", "confidence", "method"}
    assert left["confidence"] == 0.95 and "stratified audit of 200" in left["method"]
    assert left["low"] <= total - found <= left["high"]
    recall = status["recall"]
    assert set(recall) == {"lower_bound", "confidence", "frame", "method"}
    assert 0 < recall["lower_bound"] <= found / total
    assert recall["frame"]["items"] == N
    plan = status["certify"]
    assert (plan["target"], plan["confidence"]) == (0.9, 0.95)
    assert plan["extra_labels"] is None or plan["extra_labels"] > 0
    assert status["summary"].startswith(f"{found} found; with 95% confidence at least")
    rules = {r["rule"].split(" (")[0]: r for r in status["stop"]}
    assert all({"rule", "verdict", "why", "heuristic"} <= set(r) for r in rules.values())
    assert not rules["audit certificate"]["heuristic"]
    assert all(r["heuristic"] for name, r in rules.items() if name != "audit certificate")
    if recall["lower_bound"] < 0.9:
        assert rules["audit certificate"]["verdict"] == "continue"


def test_status_before_any_model_or_sample_claims_nothing(project):
    status = project.status()
    assert status["recall"] is None and status["positives_left"] is None
    assert status["certify"]["extra_labels"] is None
    assert {r["verdict"] for r in status["stop"]} <= {"continue", "cannot judge"}
    assert status["summary"].startswith("0 found")


def test_audit_size_is_checked(project):
    with pytest.raises(ValidationError, match="positive number"):
        project.next(audit=0)
    with pytest.raises(ValidationError, match=f"exceeds the {N} unlabeled"):
        project.next(audit=N + 1)
    with pytest.raises(ValidationError, match="does not combine with --strategy"):
        project.next(audit=10, strategy="mlp")


def test_stabilizing_predictions_cannot_judge_when_no_positive_is_predicted():
    none = [np.zeros(1000, dtype=np.int16)] * 5  # kappa 1.0 every round: trivially stable
    rule = stabilizing_predictions(none, positive_classes=[1])
    assert rule["verdict"] == "cannot judge" and rule["heuristic"]
    some = [np.r_[np.ones(30), np.zeros(970)].astype(np.int16)] * 5
    assert stabilizing_predictions(some, positive_classes=[1])["verdict"] == "stop"


def test_cli_next_audit_and_status_json(project, capsys):
    root = str(project.root)
    project.close()
    assert main(["next", root, "--budget", "50", "--format", "csv"]) == 0
    capsys.readouterr()
    assert main(["next", root, "--audit", "40", "--format", "jsonl"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(rows) == 40 and all(r["reason"].startswith("audit: random pick") for r in rows)
    assert main(["status", root, "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert {"positives_left", "recall", "certify", "stop"} <= set(status)
    assert main(["status", root]) == 0
    assert capsys.readouterr().out.startswith("0 found;")
    assert main(["next", root, "--audit", "0"]) == 2
    assert "positive number" in capsys.readouterr().err


def test_progress_view_leads_with_the_sentence_and_marks_heuristics(project):
    from raresift.app.server import progress_context

    s = project
    for _ in range(3):
        _answer(s, s.next(budget=60))
    _answer(s, s.next(audit=100))
    context = progress_context(s.status())
    assert context["summary"].startswith(f"{s.status()['positives_found']} found; with 95%")
    assert context["audit_size"] == 200
    names = [r["name"] for r in context["rules"]]
    assert names[0].startswith("audit certificate") and "(heuristic)" not in names[0]
    assert all(n.endswith("(heuristic)") for n in names[1:])
    assert {r["verdict"] for r in context["rules"]} <= {"stop", "keep labeling", "cannot judge"}
    heuristic = [f for f in context["figures"] if "no confidence claim" in f["label"]]
    assert len(heuristic) == 1  # the model's guess says it claims nothing
