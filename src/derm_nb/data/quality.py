"""The quality report: every row excluded, imputed or altered on the way in, with its reason."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

REPORT_COLUMNS = ["file", "row", "image_id", "check", "action", "detail"]
NEAR_DUPLICATE_COLUMNS = ["image_a", "image_b", "distance", "same_bytes", "partition_a", "partition_b", "kept"]


@dataclass
class QualityReport:
    """Collects one entry per affected row; nothing leaves the data without an entry here."""

    entries: list[dict] = field(default_factory=list)
    # Every byte-identical or near-duplicate pair check_images found (hash distance in bits), each image's official
    # partition, and which of the two stay (a, b, both, neither).
    near_duplicates: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=NEAR_DUPLICATE_COLUMNS),
                                          compare=False)
    # Images read per official partition, before any check ({} where the archive ships none).
    partitions_read: dict[str, int] = field(default_factory=dict, compare=False)

    def add(self, file: object, row: int | None, image_id: object, check: str, action: str, detail: str = "") -> None:
        self.entries.append({"file": str(file), "row": row, "image_id": None if image_id is None else str(image_id),
                             "check": check, "action": action, "detail": detail})

    def frame(self) -> pd.DataFrame:
        frame = pd.DataFrame(self.entries, columns=REPORT_COLUMNS)
        frame["row"] = frame["row"].astype("Int64")
        return frame

    def summary(self) -> pd.DataFrame:
        """Counts per check and action, for the notebook and the console."""
        frame = self.frame()
        if frame.empty:
            return pd.DataFrame(columns=["check", "action", "rows"])
        return frame.groupby(["check", "action"]).size().rename("rows").reset_index()

    def excluded_ids(self) -> set[str]:
        frame = self.frame()
        return set(frame.loc[frame["action"] == "excluded", "image_id"].dropna())

    def __str__(self) -> str:
        summary = self.summary()
        if summary.empty:
            return "quality report: no problems found"
        lines = [f"  {r.check:<32} {r.action:<10} {r.rows:>6}" for r in summary.itertuples()]
        return "quality report:\n" + "\n".join(lines)
