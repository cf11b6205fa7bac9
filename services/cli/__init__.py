"""The `prepull` command-line tool for users."""
