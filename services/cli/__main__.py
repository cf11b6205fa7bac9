"""`prepull`: the user's command-line tool.

    prepull trace JOB [-n NAMESPACE] [--kubeconfig FILE] (--spans FILE | --jaeger-url URL)
    prepull trace --trace-id HEX (--spans FILE | --jaeger-url URL)

`trace` prints a job's trace as a per-node waterfall in the terminal, from the spans file of the local OTLP
receiver (`localcluster.otlpreceiver`) that the demo and the tests run: no tracing backend needed. On a real
cluster with `deploy/observability/`, `--jaeger-url` reads the same trace from Jaeger's query service instead.
With a job, the trace id comes from the job's `prepull.io/trace-context` annotation; with `--trace-id`, no
cluster is contacted at all.

Failures the user can fix (no such job, no annotation yet, no spans file, no spans) are one line on stderr and
exit code 1; usage errors exit with 2, as argparse does.
"""

# ruff: noqa: E402 -- the imports after `lightimport.install()` must run after it: see the call
from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from services.shared.kube import lightimport

lightimport.install()  # first: the imports below then load only what this program uses of `kubernetes`

import kubernetes.config

from services.cli import cluster, jaeger, jobtrace, spans, waterfall
from services.shared.kube import errors

PROG = "prepull"
EXIT_FAILURE = 1
EXIT_USAGE = 2


class CommandError(Exception):
    """Something the user can fix; its message is printed as is."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run one `prepull` command; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    if args.command == "trace" and bool(args.job) == bool(args.trace_id):
        parser.exit(EXIT_USAGE, f"{PROG} trace: error: give either a JOB or --trace-id, not both or neither\n")
    try:
        lines = show_trace(args)
    except CommandError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    sys.stdout.write("".join(line + "\n" for line in lines))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every command."""
    parser = argparse.ArgumentParser(prog=PROG, description="Kubernetes image pre-download: tools for users.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    trace = commands.add_parser(
        "trace",
        help="print a job's trace as a per-node waterfall",
        description="Print a job's trace (or any trace) as a per-node waterfall, from a receiver's file or Jaeger.",
    )
    trace.add_argument("job", nargs="?", metavar="JOB", help="NAME of an ImagePullJob, or KIND/NAME (ipj/x, ilpj/y)")
    trace.add_argument("--trace-id", metavar="HEX", help="show this trace (32 hex digits); needs no cluster")
    trace.add_argument("-n", "--namespace", help="the job's namespace (default: the kubeconfig context's)")
    trace.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG, ~/.kube/config, in-cluster)")
    source = trace.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--spans",
        type=Path,
        metavar="FILE",
        help="JSON-lines file written by the local OTLP receiver (python -m localcluster.otlpreceiver)",
    )
    source.add_argument(
        "--jaeger-url",
        metavar="URL",
        help="Jaeger query service, e.g. http://localhost:16686 (kubectl port-forward svc/prepull-jaeger 16686)",
    )
    trace.add_argument("--width", type=_positive, default=40, help="characters of the time axis (default: 40)")
    return parser


def show_trace(args: argparse.Namespace) -> list[str]:
    """The waterfall lines `prepull trace` prints.

    Raises:
        CommandError: no trace id could be found, or no spans of it.
    """
    trace_id = _given_trace_id(args.trace_id) if args.trace_id else _job_trace_id(args)
    found = _from_jaeger(args.jaeger_url, trace_id) if args.jaeger_url else _from_file(args.spans, trace_id)
    if not found:
        where = args.jaeger_url or args.spans
        raise CommandError(
            f"no spans of trace {trace_id} in {where} yet (exporters send in batches, every few seconds; "
            "is the services' OTEL_EXPORTER_OTLP_ENDPOINT set?)"
        )
    return waterfall.render(found, bar_width=args.width)


def _from_file(path: Path, trace_id: str) -> list[spans.Span]:
    try:
        return spans.load_trace(path, trace_id)
    except FileNotFoundError as exc:
        raise CommandError(f"no spans file {path} (is the OTLP receiver running and writing there?)") from exc
    except (OSError, ValueError) as exc:
        raise CommandError(f"cannot read spans from {path}: {exc}") from exc


def _from_jaeger(url: str, trace_id: str) -> list[spans.Span]:
    try:
        return jaeger.load_trace(url, trace_id)
    except (OSError, ValueError) as exc:
        raise CommandError(f"cannot read trace {trace_id} from Jaeger at {url}: {exc}") from exc


def _given_trace_id(value: str) -> str:
    try:
        return spans.normalize_trace_id(value)
    except ValueError as exc:
        raise CommandError(str(exc)) from exc


def _job_trace_id(args: argparse.Namespace) -> str:
    path = cluster.kubeconfig_path(args.kubeconfig, os.environ, Path.home())
    namespace = args.namespace or cluster.context_namespace(path)
    try:
        with cluster.connect(path) as api:
            return jobtrace.trace_id_of_job(api, args.job, namespace=namespace)
    except errors.NotFound as exc:
        raise CommandError(f"job {args.job} not found in namespace {namespace}") from exc
    except (errors.KubeError, kubernetes.config.ConfigException, jobtrace.NoTraceError, ValueError) as exc:
        raise CommandError(str(exc)) from exc


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive number")
    return number


if __name__ == "__main__":
    sys.exit(main())
