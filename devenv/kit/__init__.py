"""The kit for a project's own services: manifests derived from ``Service(...)``, ``devenv new``, ``devenv check``."""
