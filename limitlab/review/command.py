"""The ``limitlab review RUN`` subcommand: its flags, and serving (or, with --export, exporting)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..errors import LimitlabError


def add_review_parser(sub, command: str | None, formatter=argparse.HelpFormatter) -> None:
    """Add ``review`` to the subcommands ``sub`` (its flags only when ``command`` is review or None)."""
    p = sub.add_parser("review", help="review a run's suspected label errors on a local web page; export corrections",
                       description="Serves RUN's suspects (label_errors.csv; `limitlab detect` runs first when it is "
                                   "missing) on a local, offline page: one card per suspect, keyboard first (W/Enter "
                                   "accept the suggestion, Q keep, 1-9 pick a class, E exclude, N unsure, S skip, "
                                   "Ctrl+Z undo, ? all keys), and a grid for batches. Each decision is appended to "
                                   "RUN/review/decisions.jsonl at once; reopening resumes. --export FILE writes the "
                                   "corrected labels: .npy/.csv/.txt, a label vector for `limitlab train --noise "
                                   "labels:FILE` (-1 = excluded, left out of training); for table runs .csv/.parquet "
                                   "is a corrected copy of the table. Needs pip install 'limitlab[review]'.",
                       formatter_class=formatter)
    p.set_defaults(func=cmd_review)
    if command not in (None, "review"):
        return
    p.add_argument("run", metavar="RUN", help="the run directory (the --out folder of limitlab train)")
    p.add_argument("--export", default=None, metavar="FILE",
                   help="write the corrections to FILE (no server) and print the summary")
    p.add_argument("--port", type=int, default=0, help="port to listen on (0: a free port)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on; anything but a loopback address is reachable from other machines")
    p.add_argument("--no-browser", action="store_true", help="print the URL; do not open a browser")
    p.add_argument("--data-dir", default=None, help="where the run's data are now (default: as for detect)")
    p.add_argument("--device", default="cpu", help="device for the one pass of the classifier (default: cpu)")


def cmd_review(args: argparse.Namespace) -> int:
    """``limitlab review``: export, or serve the page until Ctrl+C."""
    from .. import rundir

    run = Path(args.run)
    if not (run / rundir.CONFIG).exists():
        raise LimitlabError(f"{run} is not a run directory (no {rundir.CONFIG}); give the --out folder of a "
                            "`limitlab train` run")
    if args.export is not None:
        from .export import export_run, summary_line

        summary = export_run(run, args.export, data_dir=args.data_dir)
        print(f"review: wrote {summary['export']}; {summary_line(summary)}")
        if "retrain" in summary:
            print(f"review: retrain on the corrections: {summary['retrain']}")
        print(json.dumps(summary, indent=2))
        return 0
    from .serve import Server, announce, require_web

    require_web()
    if not 0 <= args.port <= 65535:
        raise LimitlabError(f"--port {args.port} is not a port number; give 0..65535 (0: a free port)")
    if not (run / rundir.LABEL_ERRORS).exists():
        from ..analysis.detect import detect

        print(f"review: {run} has no {rundir.LABEL_ERRORS}; running detect first", file=sys.stderr, flush=True)
        detect(run, data_dir=args.data_dir, device=args.device)
    from .export import summary_line
    from .server import Review
    from .source import from_run
    from .state import Decisions

    data = from_run(run, data_dir=args.data_dir, device=args.device)
    review = Review(data, Decisions(run / "review" / "decisions.jsonl"))
    server = Server(review, host=args.host, port=args.port)
    announce(server, open_browser=not args.no_browser)
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    print(f"review: {summary_line(review.summary())}; export with `limitlab review {run} --export labels.npy`",
          flush=True)
    return 0
