"""Study 004: GCN-based multi-instance learning with attention segmentation on ISIC 2017 (seed 004).

- `mil`: bags of blocks, rotation balancing, the GCN-MIL model and its training;
- `segmentation`: recognition scores, masks from attention, Jaccard and the η sweep, the variant record.

- `experiment`: one run over several seeds (each seed a variant, a Dask task on a cluster).

This face adds the split, the paper card, the summary's verdict, and what every study has:
`params(stem, parameters)` (`MILParams`), `variants(params)` ({name: seed}),
`train_variant(variant, inputs)` (one seed's `experiment.SeedRun`) and `findings(results, ...)`.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from derm_nb.cards import Benchmark, Deviation, PaperCard
from derm_nb.data.catalog import Use
from derm_nb.params import BackboneParams, typed_parameters
from derm_nb.workload import Pass, pretrained

# torch_geometric, which the submodules import, calls torch.jit.script at import time; torch deprecates it with a
# FutureWarning that names the machine's site-packages path on the chapter's page. Only that warning is silenced.
warnings.filterwarnings("ignore", message=r"`torch\.jit\.script` is deprecated", category=FutureWarning,
                        module=r"torch\.jit")

SPLIT = {"train": 2000 / 2750, "val": 150 / 2750, "test": 600 / 2750}   # where the archive ships no partitions
OFFICIAL_SPLIT = True   # ISIC 2017's own 2000 / 150 / 600 partitions when present
DATASETS = {"study004": Use("isic2017", "melanoma", "ISIC 2017 (2,000 / 150 / 600 official partitions)",
                            only=("isic2017",), why_only="its chapter reads the melanoma / seborrheic keratosis / "
                            "nevus classes and segments against the lesion masks")}

REAL_README = "../shared/real/README.md, Published reference figures on the same data"
ISIC2017_TEST = "ISIC 2017 official test partition (600 images, full resolution)"

CARD = PaperCard(
    study="004",
    title="GCN-based multi-instance learning for melanoma recognition and segmentation",
    benchmarks=(
        Benchmark("0.874", "melanoma ROC AUC, the best in the challenge", ISIC2017_TEST, REAL_README),
        Benchmark("0.882", "melanoma ROC AUC, the best single setting without external data", ISIC2017_TEST,
                  f"Perez et al. 2018, as quoted in {REAL_README}"),
        Benchmark("0.892", "melanoma ROC AUC, an ensemble over image sizes", ISIC2017_TEST,
                  f"Mahbod et al. 2020, as quoted in {REAL_README}"),
        Benchmark("0.943-0.966", "seborrheic keratosis ROC AUC", ISIC2017_TEST, REAL_README),
    ),
    data=("ISIC 2017 challenge test set (600 images: 117 melanoma, 90 seborrheic keratosis, 393 nevus), "
          "original resolution, 224 px blocks, ResNet-18 ImageNet features; each value the mean of five runs. "
          "'–' in the study: not reported."),
    tables={"Table 5": pd.DataFrame(
        {"Seborrheic Keratosis-AUC": [0.959, None, None, None, None, None, None, None, None, None, 0.988],
         "AUC": [0.8743, 0.892, 0.859, 0.869, 0.920, 0.923, None, None, None, 0.912, 0.930],
         "Accuracy": [None, 0.847, 0.823, 0.840, 0.901, 0.882, None, None, None, 0.857, 0.892],
         "Recall": [None, 0.586, 0.343, 0.336, None, None, None, None, None, 0.490, 0.761],
         "JA": [None, None, None, None, None, None, 0.696, 0.607, 0.651, 0.753, 0.699]},
        index=["Multi-Channel-ResNet", "VGG16", "AlexNet", "ResNet101", "CNMP", "Gessert", "FCN", "FCRN", "U-Net",
               "LIN", "GCN-based MIL"])},
    headlines=(("GCN-based MIL (ResNet-18 blocks)", "melanoma AUC (test)", 0.930, "ISIC 2017 test set, 600 images"),
               ("GCN-based MIL attention masks", "Jaccard index (test)", 0.699, "ISIC 2017 test set, 600 images")),
    splits=("ISIC 2017's official partitions (§3.1): 2,000 training images (374 melanoma, 254 seborrheic keratosis, "
            "1,372 nevus; Table 1), the validation set (Table 3: 72 / 27 / 200) and the 600-image test set "
            "(117 / 90 / 393); η is calibrated on the training images (§2.3)"),
    settings={"07_gcn_mil": {
        "backbone": "resnet18",                 # Table 2, §2.2
        "weights": "imagenet",                  # §3: ResNet-18 initialised from ImageNet
        "feature_stages": 0,                    # Table 2: the blocks' ResNet-18 output features alone
        "bag_source": "original",               # §1, §2.2: the original high-resolution image, no crop, no resize
        "image_size": 0,                        # §1, §2.2: each image as it is (0: the size it is read at, no resize)
        "block_size": 224,                      # §3.1: 224 x 224 blocks
        "stride_scale": 1.0,                    # Eq. 4: strides 50 / 120 / 200 by image height
        "rotation_steps": {"melanoma": 18, "seborrheic_keratosis": 18, "nevus": 45},   # Table 1 (the DR set)
        "gcn_hidden": 512,                      # Table 2: GCN(512, 512) twice
        "attention_dim": 128,                   # Table 2: GraphAttention(L = 128)
        "weight_init": "ones",                  # §3: weights after ResNet-18 set to 1, biases to 0
        "end_to_end": True,                     # §1, Table 4: one end-to-end network, ResNet-18 trained too
        "epochs": 400,                          # §3
        "batch_size": 1,                        # §3
        "lr": 1e-5,                             # §3: initial learning rate
        "momentum": 0.9,                        # §3: SGD with momentum 0.9
        "lr_change_epoch": 200,                 # §3: the learning rate changes at epoch 200 ...
        "lr_after": 1e-4,                       # §3: ... to 0.0001 (as printed: a rise, not a drop)
        "patience": 400,                        # §3: no early stopping (all 400 epochs)
        "seeds": 5,                             # §3: every metric the average of five results
    }},
    reasons={"07_gcn_mil": {
        "weight_init": ("every weight 1 makes all hidden units of a layer identical, and they stay identical under "
                        "gradient descent (a test shows it): the model collapses to one unit per layer, so full runs "
                        "torch-geometric's Glorot initialisation (weight_init ones runs the study's)"),
    }},
    methods={"07_gcn_mil": (
        Deviation("block features", "ResNet-18 features fed to the GCN as they are",
                  "frozen runs: standardised by the training blocks' mean and SD; end to end: by fixed statistics of "
                  "the initial backbone's features",
                  "unscaled frozen features are small and sparse: the GCN's outputs barely differ between bags and "
                  "SGD stays at the class prior (measured)"),
        Deviation("training augmentation", "DR images flipped along x or y at random, then turned by a random "
                  "multiple of 90 degrees (§2.1)", "end to end: as the study; frozen features: none",
                  "frozen features are computed once per bag, before training"),
        Deviation("block positions", "k x k blocks, each representing its central pixel, at stride s (edge "
                  "handling not stated)", "windows that fit inside the image, from its top-left corner",
                  "the study does not say how blocks at the border are padded"),
        Deviation("segmentation score (Eq. 3)", "softmax(p x α) ≥ η",
                  "(α / the image's largest α) x the predicted class's probability ≥ η",
                  "a softmax over one product is 1 whatever the block; scaling α by its maximum keeps scores "
                  "comparable between images with different numbers of blocks"),
        Deviation("where masks are scored", "the whole original image",
                  "00_data's cached masks, at the cache's resolution: the centred square (or, with a resized "
                  "cache, the whole image squeezed); original-resolution blocks are mapped onto it",
                  "the cache holds the masks aligned with the images; full-resolution masks of up to 6688 x 4439 px "
                  "for every image would not fit in memory"),
        Deviation("epoch kept", "the last (400th) epoch, as far as stated",
                  "the epoch with the lowest validation loss (of the official validation split)",
                  "the package's training engine keeps the best validation epoch"),
    )},
)


def verdict(rows: pd.DataFrame) -> str:
    """One line for the summary: melanoma and SK AUC and the attention masks' Jaccard against Table 5."""
    if "GCN-MIL" not in rows.index:
        return "* **Study 004**: GCN-based MIL was not run."
    ours, paper = rows.loc["GCN-MIL"], CARD.tables["Table 5"].loc["GCN-based MIL"]
    n = int(ours["seeds"]) if pd.notna(ours.get("seeds")) else 1
    mean = {k: ours[f"seed_mean_{k}"] if n > 1 else ours[k] for k in ("roc_auc", "sk_roc_auc", "jaccard")}
    over = f" (mean of {n} seeds)" if n > 1 else ""
    return (f"* **Study 004**: GCN-based MIL melanoma AUC {mean['roc_auc']:.3f}, seborrheic keratosis AUC "
            f"{mean['sk_roc_auc']:.3f}, Jaccard {mean['jaccard']:.3f} from attention alone{over} (study: "
            f"{paper['AUC']:.3f}, {paper['Seborrheic Keratosis-AUC']:.3f}, {paper['JA']:.3f} on ISIC 2017, the "
            "mean of five runs).")


@dataclass(frozen=True)
class MILParams(BackboneParams):
    """07_gcn_mil: the bags, the GCN-MIL model, its training and the seeds."""

    feature_stages: int
    bag_source: str
    image_size: int
    block_size: int
    stride_scale: float
    rotation_steps: Mapping[str, int]
    gcn_hidden: int
    attention_dim: int
    weight_init: str
    end_to_end: bool
    epochs: int
    batch_size: int
    lr: float
    momentum: float
    lr_change_epoch: int
    lr_after: float
    patience: int
    seeds: int
    overlay_images: int


def params(stem: str, parameters: Mapping[str, Any]) -> MILParams:
    """The typed parameters of 07_gcn_mil from its notebook's parameters."""
    if stem != "07_gcn_mil":
        raise KeyError(f"study 004 has no model chapter '{stem}' (known: 07_gcn_mil)")
    return typed_parameters(MILParams, stem, parameters)


def variants(p: MILParams) -> dict[str, int]:
    """One variant per seed (`seeds` of them from `seed`), the study's mean of several runs."""
    return {f"seed_{s}": s for s in range(p.seed, p.seed + p.seeds)}


def train_variant(variant: int, inputs: Any) -> Any:
    """One seed's model, trained and scored (`experiment.one_seed`; `inputs`: an `experiment.SeedGrid`)."""
    from derm_nb.studies.study004.experiment import one_seed

    return one_seed(variant, inputs)


def findings(results: Mapping[str, Any], labels: Any, classes: list[str], blocks: int) -> dict[str, Any]:
    """The closing numbers the prose glues (`segmentation.findings`): the mean over the seeds in `results`
    ({name: SeedRun}) beside Table 5, and the first seed's interval and η; `labels`: the test split's."""
    from derm_nb.studies.study004.experiment import seed_table
    from derm_nb.studies.study004.segmentation import findings as closing

    runs = list(results.values())
    mel = classes.index("melanoma")
    return closing(runs[0].scores, runs[0].seg, labels, mel, blocks, seed_table(runs, labels, mel),
                   CARD.tables["Table 5"].loc["GCN-based MIL"])


def block_width(backbone: str, feature_stages: int = 0) -> int:
    """How many features a block carries into the GCN: the backbone's output, and its pooled stages beside it."""
    from derm_nb.models.backbones import create_backbone, with_stage_features

    net, width, _ = create_backbone(backbone, "none")
    return with_stage_features(net, width, feature_stages)[1]


ORIGINAL_SHAPE = (767, 1022)  # bench's stand-in for an original image: the study's own example (§2.2)


def workload(stem: str, p: Mapping[str, Any], n: Mapping[str, Any]) -> list[Pass]:
    """Chapter 07's passes at archive scale (`bench --estimate`), for every seed: frozen, the backbone
    over every block of every bag once (training images once per rotation angle of their class), then
    the GCN's steps; end to end, the backbone trains on every training block each epoch and scores the
    validation blocks. Bags are cut from the cache, or from images of the study's example size."""
    from derm_nb.studies.study004 import mil

    shape = ORIGINAL_SHAPE if p["bag_source"] == "original" else (n["cache_size"], n["cache_size"])
    block = p["block_size"]
    blocks = len(mil.block_grid(*shape, block, mil.stride_for_height(shape[0], p["stride_scale"])))
    angles = mil.rotations(p["rotation_steps"], list(n["classes_train"]))
    train_bags = sum(count * len(angles[k]) for k, count in enumerate(n["classes_train"].values()))
    seeds, epochs, net = p["seeds"], p["epochs"], pretrained(p, p["backbone"])
    steps = seeds * epochs * train_bags / p["batch_size"]
    gcn = Pass("GCN-MIL training steps", "gcn_mil", blocks, steps,
               probe=lambda device: mil.train_step(device, blocks, p["gcn_hidden"], p["attention_dim"], p["batch_size"],
                                                   block_width(net["backbone"], p.get("feature_stages", 0))))
    if not p["end_to_end"]:
        bags = train_bags + n["val"] + n["test"]
        return [Pass("block features", size=block, images=bags * blocks, train=False, **net), gcn]
    scored = seeds * (epochs * n["val"] + n["test"] + n["classes_train"].get("melanoma", 0))
    return [Pass("backbone training (end to end)", size=block, images=seeds * epochs * train_bags * blocks, **net),
            Pass("backbone scoring (end to end)", size=block, images=scored * blocks, train=False, **net), gcn]
