# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # The data
#
# Which images, labels and patients does every later chapter stand on?

# %% tags=["parameters"]
profile = "default"
run_dir = ""
seed = 0
data_source = "synthetic"
data_root = ""
device = "auto"

# %%
from derm_nb.artifacts import notebook_dir, run_dir_for, write_json

out = notebook_dir(run_dir_for(profile, run_dir), "00_data")
write_json(out / "summary.json", {"profile": profile, "data_source": data_source, "seed": seed})
print(out)
