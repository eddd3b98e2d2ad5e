"""``neurobridge datasets list | info NAME | fetch NAME | verify NAME``."""

from __future__ import annotations

import argparse
import json
import sys

__all__ = ["add_parser", "run"]


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register the ``datasets`` subcommand on the ``neurobridge`` parser."""
    p = subparsers.add_parser("datasets", help="list, describe, download and verify datasets",
                              description="List, describe, download and verify the datasets of neurobridge.")
    sub = p.add_subparsers(dest="datasets_command", metavar="ACTION")
    sub.add_parser("list", help="names and titles of the datasets")
    for action, text in (("info", "show the card of a dataset (description, citation, license, files)"),
                         ("fetch", "download missing files (checksums verified)"),
                         ("verify", "check the files on disk against the card's SHA-256")):
        q = sub.add_parser(action, help=text)
        q.add_argument("name", help="dataset name (see `neurobridge datasets list`)")
        q.add_argument("--data-dir", default=None,
                       help="folder that contains <name>/ (default $NEUROBRIDGE_DATA, else the user cache)")
        if action == "info":
            q.add_argument("--json", action="store_true", help="print the card as JSON")
        if action == "fetch":
            q.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(datasets_parser=p)
    return p


def run(args: argparse.Namespace) -> int:
    """Run ``neurobridge datasets ...``; returns the exit status."""
    from . import CARDS, data_root, dataset_dir, fetch, info, verify

    action = getattr(args, "datasets_command", None)
    out = sys.stdout
    if action is None:
        args.datasets_parser.print_help()
        return 2
    if action == "list":
        width = max(len(n) for n in CARDS)
        for name in sorted(CARDS):
            card = CARDS[name]
            print(f"{name:<{width}}  {card.modality:<22}  {card.title}", file=out)
        print(f"\ndata folder: {data_root()}", file=out)
        return 0
    card = info(args.name)
    if action == "info":
        if args.json:
            print(json.dumps(card.to_dict(), indent=2), file=out)
            return 0
        print(f"{card.name}: {card.title}\n", file=out)
        print(card.description + "\n", file=out)
        for key in ("modality", "stimulus_type", "license", "source", "citation"):
            print(f"{key}: {getattr(card, key)}", file=out)
        if card.fetcher:
            print(f"fetched by: {card.fetcher}", file=out)
        print(f"folder: {dataset_dir(card.name, args.data_dir)}", file=out)
        if card.files:
            print("files:", file=out)
            for f in card.files:
                size = f" ({f.size / 1e6:.2f} MB)" if f.size else ""
                print(f"  {f.name}{size}\n    url: {f.url}\n    sha256: {f.sha256 or 'unknown'}", file=out)
        return 0
    if action == "fetch":
        if not card.files:
            from . import load

            print(f"{card.name}: downloading with {card.fetcher} into {dataset_dir(card.name, args.data_dir)} ...",
                  file=out)
            bundle = load(card.name, data_dir=args.data_dir, progress=False if args.no_progress else None)
            print(f"ok  {bundle!r}", file=out)
            return 0
        paths = fetch(card.name, data_dir=args.data_dir, progress=False if args.no_progress else None)
        for name, path in paths.items():
            print(f"ok  {name}  {path}", file=out)
        return 0
    if action == "verify":
        if not card.files:
            folder = dataset_dir(card.name, args.data_dir)
            present = folder.is_dir() and any(folder.iterdir())
            print(f"{'present' if present else 'missing':<13} {folder}  (files and checksums managed by "
                  f"{card.fetcher})", file=out)
            return 0 if present else 1
        bad = 0
        for st in verify(card.name, data_dir=args.data_dir):
            print(f"{st.status:<13} {st.name}  {st.path}", file=out)
            if st.status == "bad checksum":
                print(f"              expected {st.expected}\n              found    {st.found}", file=out)
            bad += st.status in ("missing", "bad checksum")
        return 1 if bad else 0
    raise ValueError(f"unknown datasets action {action!r}")  # pragma: no cover
