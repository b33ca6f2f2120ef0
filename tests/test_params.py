"""Parameter files are validated against the notebooks' own parameters cells."""

from __future__ import annotations

import pytest
import yaml

from derm_nb.chapters import CHAPTERS
from derm_nb.params import PROFILES, Declared, ParameterError, load_profile

DECLARED = {
    "00_data": {"seed": Declared("seed", 0), "data_source": Declared("data_source", "synthetic"),
                "cache_size": Declared("cache_size", 160), "synth_prevalence": Declared("synth_prevalence", 0.05),
                "profile": Declared("profile", "default"), "run_dir": Declared("run_dir", "")},
    "01_eda": {"seed": Declared("seed", 0), "show": Declared("show", True)},
}


def project(tmp_path, text: str):
    (tmp_path / "params").mkdir()
    (tmp_path / "params" / "p.yaml").write_text(text)
    return tmp_path


def test_valid_profile_merges_common_and_notebook_keys(tmp_path):
    root = project(tmp_path, "common: {seed: 3}\nnotebooks:\n  00_data: {cache_size: 64, synth_prevalence: 1}\n")
    profile = load_profile(root, "p", DECLARED)
    values = profile.for_notebook("00_data", DECLARED["00_data"])
    assert values == {"seed": 3, "cache_size": 64, "synth_prevalence": 1, "profile": "p"}
    assert profile.for_notebook("01_eda", DECLARED["01_eda"]) == {"seed": 3, "profile": "p"}


@pytest.mark.parametrize("text, message", [
    ("common: {sede: 3}\n", "p.yaml: common.sede is not a parameter of any notebook"),
    ("notebooks:\n  00_data: {cache_sise: 3}\n", "p.yaml: notebooks.00_data.cache_sise is not a parameter of 00_data"),
    ("notebooks:\n  99_nope: {}\n", "p.yaml: notebooks.99_nope is not a notebook"),
    ("notebooks:\n  00_data: {cache_size: big}\n", "notebooks.00_data.cache_size = 'big' has type str"),
    ("notebooks:\n  00_data: {cache_size: 1.5}\n", "notebooks.00_data.cache_size = 1.5 has type float"),
    ("notebooks:\n  01_eda: {show: 1}\n", "notebooks.01_eda.show = 1 has type int"),
    ("common: {seed: true}\n", "common.seed = True has type bool"),
    ("commons: {}\n", "unknown top-level key 'commons'"),
    ("common: [1, 2]\n", "'common' must be a mapping"),
    ("common: {profile: x}\n", "common.profile is set by the runner"),
    ("common: {seed: [\n", "not valid YAML"),
    ("real_data:\n  00_data: {cache_sise: 3}\n", "p.yaml: real_data.00_data.cache_sise is not a parameter of 00_data"),
    ("real_data:\n  99_nope: {}\n", "p.yaml: real_data.99_nope is not a notebook"),
    ("real_data:\n  00_data: [1]\n", "p.yaml: real_data.00_data must be a mapping"),
    ("real_data:\n  00_data: {cache_size: big}\n", "real_data.00_data.cache_size = 'big' has type str"),
])
def test_bad_parameter_files_name_file_and_key(tmp_path, text, message):
    root = project(tmp_path, text)
    with pytest.raises(ParameterError) as err:
        load_profile(root, "p", DECLARED)
    assert message in str(err.value)


def test_unknown_profile_lists_known(tmp_path):
    root = project(tmp_path, "{}")
    with pytest.raises(ParameterError, match="unknown profile 'nope'.*known: p"):
        load_profile(root, "nope", DECLARED)


def test_user_file_and_overrides_layer_with_the_same_validation(tmp_path):
    root = project(tmp_path, "common: {seed: 1}\n")
    user = tmp_path / "mine.yaml"
    user.write_text("notebooks:\n  00_data: {data_source: isic2020}\n")
    profile = load_profile(root, "p", DECLARED, user_file=user, overrides={"seed": 9})
    assert profile.for_notebook("00_data", DECLARED["00_data"])["data_source"] == "isic2020"
    assert profile.common["seed"] == 9
    user.write_text("notebooks:\n  00_data: {data_sorce: isic2020}\n")
    with pytest.raises(ParameterError, match="mine.yaml: notebooks.00_data.data_sorce"):
        load_profile(root, "p", DECLARED, user_file=user)
    with pytest.raises(ParameterError, match="command line: common.seed = 'x'"):
        load_profile(root, "p", DECLARED, overrides={"seed": "x"})


@pytest.mark.parametrize("profile", PROFILES)
def test_shipped_profiles_validate_against_the_notebooks(root, real_declared, profile):
    from derm_nb.studies import paper_settings

    loaded = load_profile(root, profile, real_declared, paper=paper_settings())
    for nb in CHAPTERS:
        values = loaded.for_notebook(nb.stem, real_declared[nb.stem])
        assert set(values) <= set(real_declared[nb.stem])


def test_every_notebook_declares_profile_and_run_dir(real_declared):
    for stem, params in real_declared.items():
        assert {"profile", "run_dir", "seed"} <= set(params), stem


def test_profiles_are_plain_yaml(root):
    for profile in PROFILES:
        data = yaml.safe_load((root / "params" / f"{profile}.yaml").read_text())
        assert set(data) <= {"common", "notebooks", "real_data", "paper_settings"}


def test_papermill_reads_every_assignment_of_each_parameters_cell(root, real_declared):
    """papermill silently drops a line it cannot parse (a comment holding '=' did), and that key then
    fails validation as 'not a parameter of any notebook'."""
    import ast

    from derm_nb.runner import read_source

    for nb in CHAPTERS:
        cell = next(c for c in read_source(root, nb.stem).cells if "parameters" in c.metadata.get("tags", []))
        assigned = {t.id for node in ast.parse(cell.source).body if isinstance(node, ast.Assign)
                    for t in node.targets if isinstance(t, ast.Name)}
        assert assigned == set(real_declared[nb.stem]), nb.stem


def test_parameters_cells_are_the_default_profile(root, real_declared):
    """A chapter run by hand in JupyterLab writes to runs/default/: it must be configured like the batch run."""
    loaded = load_profile(root, "default", real_declared)
    for nb in CHAPTERS:
        values = loaded.for_notebook(nb.stem, real_declared[nb.stem])
        differing = {k: (real_declared[nb.stem][k].default, v) for k, v in values.items()
                     if real_declared[nb.stem][k].default != v}
        assert not differing, f"{nb.stem}: parameters cell vs params/default.yaml (cell, profile): {differing}"


def test_real_data_keys_layer_over_a_chapter_that_reads_a_real_folder(tmp_path):
    root = project(tmp_path, "notebooks:\n  00_data: {cache_size: 128, synth_prevalence: 0.1}\n"
                             "real_data:\n  00_data: {cache_size: 256}\n")
    profile = load_profile(root, "p", DECLARED)
    assert profile.for_notebook("00_data", DECLARED["00_data"])["cache_size"] == 128
    real = profile.for_notebook("00_data", DECLARED["00_data"], real=True)
    assert real["cache_size"] == 256 and real["synth_prevalence"] == 0.1
    user = tmp_path / "mine.yaml"
    user.write_text("notebooks:\n  00_data: {cache_size: 192}\n")   # a later layer wins on real data too
    mine = load_profile(root, "p", DECLARED, user_file=user)
    assert mine.for_notebook("00_data", DECLARED["00_data"], real=True)["cache_size"] == 192


def test_a_chapter_gets_the_real_data_keys_only_where_it_reads_a_real_folder(tmp_path):
    from derm_nb.artifacts import write_json
    from derm_nb.chapters import CATALOG_FILE
    from derm_nb.runner import ChapterJob, job_parameters

    write_json(tmp_path / "00_data" / CATALOG_FILE, {"slots": {"study003": {"synthetic": False},
                                                               "study004": {"synthetic": True}}})

    def job(stem: str, parameters: dict) -> ChapterJob:
        return ChapterJob(tmp_path, tmp_path, stem, tmp_path / f"{stem}.ipynb", parameters, [], False,
                          {"image_size": 224})

    assert job_parameters(job("06_architectures", {"image_size": 96}))["image_size"] == 224   # study003: real
    assert job_parameters(job("07_gcn_mil", {"image_size": 96}))["image_size"] == 96          # study004: synthetic
    assert job_parameters(job("00_data", {"data": {"busi": "/data/BUSI"}}))["image_size"] == 224
    assert "image_size" not in job_parameters(job("00_data", {"data": {"busi": "synthetic"}}))


def test_a_run_that_chooses_settings_scores_the_validation_split_in_the_tests_place(tmp_path):
    import pandas as pd

    from derm_nb.chapters import chapter

    class Splits:
        def split(self, scheme: str, name: str) -> pd.DataFrame:
            return pd.DataFrame({"split": [name]})

    base = {"profile": "p", "run_dir": str(tmp_path)}
    for score_split, scored in (("test", "test"), ("val", "val")):
        ctx = chapter("06_architectures", base | {"score_split": score_split})
        ctx.__dict__["data"] = Splits()
        assert ctx.scored == scored and ctx.split("test")["split"].item() == scored
        assert ctx.splits()["val"]["split"].item() == "val"
    with pytest.raises(ValueError, match="06_architectures: score_split is one of test, val, not 'tset'"):
        chapter("06_architectures", base | {"score_split": "tset"})
