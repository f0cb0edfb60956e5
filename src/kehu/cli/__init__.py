"""The ``kehu`` command line: thin commands over the shared services."""
