"""derm-nb: skin-lesion classification under class imbalance, as an executable book."""

import warnings

# Without ipywidgets, tqdm.auto warns once per notebook and falls back to text bars; the text bars
# are what we want (widget bars do not render in the static HTML book), so the warning is noise.
try:
    from tqdm import TqdmExperimentalWarning, TqdmWarning

    warnings.filterwarnings("ignore", category=TqdmWarning)
    warnings.filterwarnings("ignore", category=TqdmExperimentalWarning)
except ImportError:  # pragma: no cover
    pass

__version__ = "0.1.0"
