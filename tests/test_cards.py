"""Paper cards: the full profile starts from them, and each chapter's "What differs from the paper" table."""

from __future__ import annotations

import pandas as pd
import pytest

from derm_nb.cards import Deviation, PaperCard, differences
from derm_nb.params import ParameterError, load_profile, profile_facts
from derm_nb.studies import STUDIES, paper_settings, study

CARD = PaperCard(study="999", title="t", data="the paper's archive", splits="80:20 by patient",
                 settings={"02_baseline": {"image_size": 256, "lr": 1e-5, "sets": ["all", "small"]}},
                 reasons={"02_baseline": {"lr": "a stated reason"}},
                 methods={"02_baseline": (Deviation("head", "two dropouts", "one dropout", "a method reason"),)})


def _table(params: dict, profile: str = "default", follows: bool = False) -> pd.DataFrame:
    return differences(CARD, "02_baseline", params, "synthetic", True, profile, follows, "the CPU budget")


def test_a_table_lists_the_changed_settings_with_why():
    table = _table({"image_size": 64, "lr": 1e-5, "sets": ["all"]}).set_index("aspect")
    assert list(table.index) == ["data", "splits", "image_size", "sets", "head"]
    assert table.loc["image_size", "paper"] == "256" and table.loc["image_size", "this run"] == "64"
    assert table.loc["image_size", "why"] == "the default profile (the CPU budget)"
    assert table.loc["head", "why"] == "a method reason"
    assert "synthetic stand-in" in table.loc["data", "why"]


def test_under_the_paper_profile_a_change_gives_the_cards_reason_or_names_the_user():
    table = _table({"image_size": 128, "lr": 1e-4, "sets": ["all", "small"]}, "full", True).set_index("aspect")
    assert table.loc["lr", "why"] == "a stated reason"
    assert table.loc["image_size", "why"].startswith("set for this run")
    assert "sets" not in table.index


def test_a_setting_the_chapter_does_not_declare_is_an_error():
    with pytest.raises(KeyError, match="image_size"):
        _table({"lr": 1e-5, "sets": []})


def test_a_paper_profile_starts_from_the_cards(tmp_path):
    (tmp_path / "params").mkdir()
    (tmp_path / "params" / "p.yaml").write_text("# p: a test\npaper_settings: true\nnotebooks:\n  nb:\n    b: 3\n")
    from derm_nb.params import Declared

    declared = {"nb": {"a": Declared("a", 1), "b": Declared("b", 1)}}
    loaded = load_profile(tmp_path, "p", declared, paper={"nb": {"a": 7, "b": 5}})
    assert loaded.for_notebook("nb", declared["nb"]) == {"a": 7, "b": 3, "profile": "p"}
    assert profile_facts(tmp_path, "p") == (True, "a test")
    with pytest.raises(ParameterError, match="paper_settings"):
        load_profile(tmp_path, "p", declared)
    with pytest.raises(ParameterError, match="not a parameter of nb"):
        load_profile(tmp_path, "p", declared, paper={"nb": {"c": 1}})


@pytest.mark.parametrize("sid", sorted(STUDIES))
def test_every_card_states_its_data_and_splits(sid):
    card = study(sid).CARD
    assert card.data and card.splits, f"study {sid}: the card must say the paper's data and splits"
    assert card.settings, f"study {sid}: the card holds no settings"
    for stem, reasons in card.reasons.items():
        assert set(reasons) <= set(card.settings.get(stem, {})), f"{sid}: a reason for a setting the card lacks"
        assert all(len(r) > 10 for r in reasons.values())


def test_the_full_profile_is_the_cards_but_for_stated_reasons(root, real_declared):
    """Resolved `full` equals each card's settings; every key where it differs has the card's reason."""
    loaded = load_profile(root, "full", real_declared, paper=paper_settings())
    for sid in STUDIES:
        card = study(sid).CARD
        for stem, settings in card.settings.items():
            values = loaded.for_notebook(stem, real_declared[stem])
            differing = {k for k, v in settings.items() if values[k] != v}
            assert differing == set(card.reasons.get(stem, {})), (
                f"study {sid}, {stem}: full differs from the card on {sorted(differing)}; reasons are given for "
                f"{sorted(card.reasons.get(stem, {}))}")


def test_card_prose_takes_the_runs_values_not_a_profiles():
    from derm_nb.cards import fill

    assert fill("at most {epochs} epochs, margins {margins}", {"epochs": 7, "margins": [0.2, 0.6]}) == \
        "at most 7 epochs, margins 0.2, 0.6"
    with pytest.raises(KeyError, match="06_architectures.*'epochs'"):
        fill("at most {epochs} epochs", {}, "06_architectures")
    card = study("003").CARD
    row = next(d for d in card.methods["06_architectures"] if d.aspect == "training length")
    assert "{epochs}" in row.ours   # the card names the parameter; no profile's value is restated
    for sid in STUDIES:   # every placeholder any card uses names a parameter its chapter declares
        for stem, rows in study(sid).CARD.methods.items():
            for d in rows:
                fill(d.ours, {k: 0 for k in _declared_names(stem)}, stem)


def _declared_names(stem: str) -> set[str]:
    import ast
    from pathlib import Path

    source = (Path(__file__).resolve().parents[1] / "notebooks" / f"{stem}.py").read_text()
    cell = source.split('tags=["parameters"]', 1)[1].split("# %%", 1)[0]
    return {t.id for node in ast.parse(cell).body if isinstance(node, ast.Assign) for t in node.targets}


def test_every_public_benchmark_has_its_figure_metric_data_and_source(root):
    """Quoted, never measured: each figure appears verbatim in the source the card names (the shared README or a
    study's paper), when that source is at hand."""
    from derm_nb import studies
    from derm_nb.cards import NONE_QUOTED, benchmark_rows

    rows = benchmark_rows(studies.cards())
    assert set(rows["study"]) == set(STUDIES)
    quoted = rows[rows["figure"] != NONE_QUOTED]
    assert len(quoted) and (quoted[["figure", "metric", "data", "source"]] != "").all().all()
    readme = root.parent / "shared" / "real" / "README.md"
    if readme.is_file():
        text = readme.read_text()
        for _, row in quoted[quoted["source"].str.contains("real/README.md")].iterrows():
            assert row["figure"].removeprefix("about ") in text, row["figure"]
    none = rows[rows["figure"] == NONE_QUOTED]
    assert (none[["metric", "data", "source"]] == "").all().all()
