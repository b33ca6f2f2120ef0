"""The `derm-nb` commands users run by hand."""

from __future__ import annotations

import formats
import pandas as pd
import pytest

from derm_nb.cli import main


def test_synth_then_data_writes_manifest_and_report(tmp_path, capsys):
    assert main(["synth", "--out", str(tmp_path / "isic2017"), "--preset", "isic2017", "--n-patients", "4",
                 "--workers", "1"]) == 0
    assert (tmp_path / "isic2017" / "ISIC-2017_Training_Part3_GroundTruth.csv").is_file()
    assert (tmp_path / "isic2017.oracle.csv").is_file()
    assert main(["data", "--source", "isic2017", "--root", str(tmp_path / "isic2017"), "--out",
                 str(tmp_path / "prepared"), "--size", "32", "--workers", "1"]) == 0
    manifest = pd.read_parquet(tmp_path / "prepared" / "manifest.parquet")
    assert "split_study004" in manifest and (tmp_path / "prepared" / "quality_report.csv").is_file()
    assert "manifest:" in capsys.readouterr().out


def test_data_on_a_real_format_fixture_reports_bad_rows(tmp_path, capsys):
    formats.ham10000(tmp_path / "ham")
    (tmp_path / "ham" / "HAM10000_images_part_1" / "ISIC_0027419.jpg").unlink()
    assert main(["data", "--source", "ham10000", "--root", str(tmp_path / "ham"), "--out", str(tmp_path / "out"),
                 "--size", "16", "--workers", "1"]) == 0
    report = pd.read_csv(tmp_path / "out" / "quality_report.csv")
    assert ("ISIC_0027419", "missing image", "excluded") in set(zip(report["image_id"], report["check"],
                                                                    report["action"]))


def test_errors_are_one_clear_line(tmp_path, capsys):
    (tmp_path / "bad" / "jpeg" / "train").mkdir(parents=True)
    (tmp_path / "bad" / "train.csv").write_text("image_name,target\nISIC_1,0\n")
    assert main(["data", "--source", "isic2020", "--root", str(tmp_path / "bad"), "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert "train.csv: required column 'patient_id' is missing" in err
    assert main(["run", "--profile", "nope"]) == 1
    assert "unknown profile 'nope'" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["run", "--dat", "isic2020=/x"], ["run", "--prof", "smoke"],
                                  ["data", "--source", "busi", "--root", "/x", "--out", "/y", "--work", "2"]])
def test_partial_or_unknown_flags_are_errors(argv, capsys):
    """argparse would take `--dat` for `--data` (prefix matching)."""
    with pytest.raises(SystemExit) as err:
        main(argv)
    assert err.value.code == 2
    assert "unrecognized arguments" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["run", "--source", "isic2020"], "replaced by --data NAME=ROOT"),
    (["run", "--data-root", "/x"], "replaced by --data NAME=ROOT"),
    (["run", "--data", "isic2020"], "expected NAME=ROOT"),
    (["run", "--data", "isic2021=/x"], "unknown source 'isic2021'"),
    (["run", "--data", "busi=/a", "--data", "busi=/b"], "--data busi=... given twice"),
])
def test_data_flags_are_checked_before_anything_runs(argv, message):
    with pytest.raises(SystemExit) as err:
        main(argv)
    assert message in str(err.value)


def test_data_flags_become_the_00_data_roots(tmp_path):
    from derm_nb.cli import data_roots

    assert data_roots([f"isic2020={tmp_path}", "busi=synthetic"]) == {"isic2020": str(tmp_path.resolve()),
                                                                     "busi": "synthetic"}
