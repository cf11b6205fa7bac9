"""`prepull-nodeimage-sync`: parse flags, set up logging and tracing, run the service until told to stop."""

# ruff: noqa: E402 -- the imports after `lightimport.install()` must run after it: see the call
from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence

from services.shared.kube import lightimport

lightimport.install()  # first: the imports below then load only what this program uses of `kubernetes`

from services.nodeimage_sync import app, settings
from services.shared import logging as shared_logging
from services.shared import settings as shared_settings
from services.shared.telemetry import setup as telemetry_setup


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """Run the service; the process exit status (2 for bad flags, 1 after losing leadership)."""
    environment = os.environ if environ is None else environ
    try:
        parsed = settings.parse(sys.argv[1:] if argv is None else argv, environment)
    except shared_settings.SettingsError as error:
        print(error, file=sys.stderr)
        return 2
    shared_logging.configure(parsed.common.log_level)
    tracing = telemetry_setup.configure_tracing(environment, default_service_name=settings.PROG)
    try:
        return app.App(parsed).run()
    finally:
        tracing.shutdown()


if __name__ == "__main__":
    sys.exit(main())
