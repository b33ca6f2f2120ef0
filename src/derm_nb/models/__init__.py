"""Models every study shares: the backbone registry with offline weights, and a generic classifier head."""
