import csv
import json

import pytest

from raresift.errors import ValidationError
from raresift.simulate.report import report_command
from raresift.simulate.runner import simulate_command

CONFIG = """
name = "tiny-report"
description = "A tiny rare-classes study on digits."
seeds = [0, 1, 2]
rounds = 2
budget = 6

[dataset]
name = "digits"
test_per_class = 20

[scenario]
kind = "rare-classes"
labeled_per_class = 4
labeled_per_rare_class = 1
unlabeled_per_class = 40
imbalance = 10
query_per_rare_class = 2

[model]
kind = "logistic"
max_iter = 100

[[strategies]]
name = "random"

[[strategies]]
name = "entropy"
label = "maxent"
"""


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("study")
    config = root / "tiny.toml"
    config.write_text(CONFIG)
    report = simulate_command(config, root / "out", jobs=1, progress=False)
    return root, report


def test_report_has_setup_results_and_figures(study):
    root, report = study
    text = report.read_text()
    assert text.startswith("# tiny-report\n\nA tiny rare-classes study on digits.")
    assert f"raresift simulate {root / 'tiny.toml'} --out {root / 'out'} --jobs 1" in text
    assert "seeds: [0, 1, 2]" in text and '"query_set": 10' in text and '"unlabeled": 220' in text
    assert "maxent = `entropy`" in text
    # final-round table: one line per strategy with mean ± std at 5 * 4 + 5 * 1 + 2 * 6 = 37 labels
    final = [
        line for line in text.splitlines() if line.startswith(("| random | 37", "| maxent | 37"))
    ]
    assert len(final) == 2 and all("±" in line for line in final)
    assert "Labels needed to reach random's final test accuracy" in text
    for png in ("curve_accuracy.png", "curve_rare_accuracy.png", "curve_n_rare_selected.png",
                "penalty_accuracy.png", "penalty_rare_accuracy.png"):  # fmt: skip
        assert f"]({png})" in text
        assert (report.parent / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "### Penalty matrix: rare-class accuracy" in text and "| column sum |" in text
    study_json = json.loads((report.parent / "study.json").read_text())
    assert study_json["scenario"]["rare_classes"] == [5, 6, 7, 8, 9]


def test_report_command_rewrites_elsewhere(study, tmp_path):
    root, _ = study
    path = report_command(root / "out" / "results.csv", tmp_path / "again")
    assert (
        path == tmp_path / "again" / "report.md"
        and (tmp_path / "again" / "curve_accuracy.png").exists()
    )
    assert "# tiny-report" in path.read_text()


def test_report_with_one_seed_explains_missing_penalty_matrix(study, tmp_path):
    root, _ = study
    with open(root / "out" / "results.csv", newline="") as fh:
        rows = [row for row in csv.DictReader(fh) if row["seed"] == "0"]
    one_seed = tmp_path / "results.csv"
    with open(one_seed, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    text = report_command(one_seed, tmp_path).read_text()
    assert "No penalty matrix for test accuracy: too few seeds for a penalty matrix: 1" in text
    final = next(line for line in text.splitlines() if line.startswith("| maxent | 37"))
    assert "± n/a" in final and "± 0.000" not in final  # one seed has no spread
    with pytest.raises(ValidationError, match="does not exist"):
        report_command(tmp_path / "missing.csv")


def test_combined_penalty_matrix_sums_studies(study, tmp_path):
    from raresift.simulate.report import write_combined_penalty
    from raresift.simulate.stats import penalty_matrix, read_table

    root, _ = study
    results = root / "out" / "results.csv"
    _, single = penalty_matrix(read_table(results), "rare_accuracy")
    path = write_combined_penalty([results, results], "rare_accuracy", tmp_path / "c.md", "both")
    text = path.read_text()
    row = next(line for line in text.splitlines() if line.startswith("| maxent |"))
    assert row == f"| maxent | {2 * single[1, 0]:.2f} | 0.00 | {2 * single[1].sum():.2f} |"
    assert (tmp_path / "c.png").exists() and "Summed over" in text
