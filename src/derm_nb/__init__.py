"""derm-nb: skin-lesion classification under class imbalance, as an executable book."""
__version__ = "0.1.0"
