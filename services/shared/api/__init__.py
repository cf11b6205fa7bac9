"""Our API types: one module per CRD kind (frozen dataclasses parsed once at the edge), names, image references."""
