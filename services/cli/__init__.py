"""The `prepull` command-line tool for users (`__main__`), with one module per concern it draws on."""

__all__ = ["cluster", "jaeger", "jobtrace", "spans", "waterfall"]
