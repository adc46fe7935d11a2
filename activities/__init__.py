"""Activities: the only code that talks to clusters, metrics and stores. Workflows call them by name."""
