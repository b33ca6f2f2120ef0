"""One module per archive, each defining its `SOURCE` record (see `derm_nb.data.registry`)."""
