"""Check ad.rewards partitions with the expectation suite; optionally write HTML Data Docs.

Usage::

    python -m quality.check <table root or partition> [--docs DIR] [--reward-min X --reward-max Y]

Prints one line per partition and exits 1 when any partition fails, 2 on a usage error
(missing path, bad bounds, a root without partitions).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import warnings
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

# Before GE is imported: no usage statistics from a batch job.
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

import great_expectations as gx  # noqa: E402
from great_expectations.core.run_identifier import RunIdentifier  # noqa: E402
from great_expectations.data_context.types.base import (  # noqa: E402
    DataContextConfig,
    InMemoryStoreBackendDefaults,
    ProgressBarsConfig,
)

from quality.expectations import (  # noqa: E402
    DEFAULT_BOUNDS,
    DEFAULT_CREDIT_REL_TOL,
    HOUR_END,
    HOUR_START,
    RewardBounds,
    SuiteConfig,
    build_suite,
    derive,
)
from quality.partition import (  # noqa: E402
    PartitionError,
    find_partitions,
    is_partition,
    partition_hour,
    partition_label,
    read_partition,
)
from quality.report import ExpectationOutcome, PartitionReport, outcome_from  # noqa: E402

__all__ = [
    "ExpectationOutcome",
    "PartitionError",
    "PartitionReport",
    "RewardBounds",
    "check_partition",
    "check_table",
    "main",
]

DATASOURCE = "ad_rewards"
DOCS_SITE = "local_site"
MAX_EXAMPLES = 5
CLI_EXAMPLES = 2


class _Session:
    """One in-memory GE context for a set of partitions, so their Data Docs share one index."""

    def __init__(self, config: SuiteConfig) -> None:
        project = DataContextConfig(
            store_backend_defaults=InMemoryStoreBackendDefaults(),
            analytics_enabled=False,
            progress_bars=ProgressBarsConfig(globally=False),
        )
        self.context: Any = gx.get_context(mode="ephemeral", project_config=project)
        self.datasource = self.context.data_sources.add_pandas(DATASOURCE)
        self.config = config
        self._suites: dict[bool, Any] = {}

    def _suite(self, hour_check: bool) -> Any:
        if hour_check not in self._suites:
            name = "ad_rewards_partition" if hour_check else "ad_rewards_file"
            suite = build_suite(name, self.config, hour_check=hour_check)
            self._suites[hour_check] = self.context.suites.add(suite)
        return self._suites[hour_check]

    def validate(self, path: Path, label: str) -> PartitionReport:
        frame = derive(read_partition(path))
        window = partition_hour(label)
        # Asset and validation names become Data Docs file names: no path separators.
        name = label.replace("/", "_")
        name = _fresh(name, {a.name for a in self.datasource.assets})
        batch = self.datasource.add_dataframe_asset(name=name).add_batch_definition_whole_dataframe("whole")
        suite = self._suite(window is not None)
        definition = self.context.validation_definitions.add(
            gx.ValidationDefinition(name=name, data=batch, suite=suite)
        )
        parameters = {HOUR_START: window[0], HOUR_END: window[1]} if window else None
        result = definition.run(
            batch_parameters={"dataframe": frame},
            expectation_parameters=parameters,
            result_format={"result_format": "SUMMARY", "partial_unexpected_count": 20},
            run_id=RunIdentifier(run_name=name),
        )
        # GE groups results by column; report them in suite order instead.
        order = {e.meta["check"]: i for i, e in enumerate(suite.expectations)}
        outcomes = sorted(
            (outcome_from(r, frame, max_examples=MAX_EXAMPLES) for r in result.results),
            key=lambda o: order.get(o.name, len(order)),
        )
        return PartitionReport(partition=label, rows=len(frame), outcomes=tuple(outcomes))

    def build_docs(self, docs_dir: Path) -> str:
        site = {
            "class_name": "SiteBuilder",
            "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(docs_dir)},
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        }
        self.context.add_data_docs_site(DOCS_SITE, site)
        return str(self.context.build_data_docs(site_names=[DOCS_SITE])[DOCS_SITE])


def _fresh(name: str, taken: set[str]) -> str:
    """``name``, or ``name~2``, ``name~3``... when two checked paths share a label."""
    candidate, n = name, 1
    while candidate in taken:
        n += 1
        candidate = f"{name}~{n}"
    return candidate


@contextmanager
def _quiet() -> Iterator[None]:
    # GE warns about its own internals (deprecations, pandas idioms); nothing the caller can act on.
    logging.getLogger("great_expectations").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def check_partition(
    path: str | os.PathLike[str],
    *,
    docs_dir: str | os.PathLike[str] | None = None,
    bounds: RewardBounds = DEFAULT_BOUNDS,
    credit_rel_tol: float = DEFAULT_CREDIT_REL_TOL,
) -> PartitionReport:
    """Run the suite on one partition directory (or one Parquet file).

    Raises PartitionError when the path is missing, the partition is empty or a column is missing.
    """
    path = Path(path)
    with _quiet():
        session = _Session(SuiteConfig(bounds=bounds, credit_rel_tol=credit_rel_tol))
        report = session.validate(path, partition_label(path))
        if docs_dir is not None:
            return _with_docs([report], session, Path(docs_dir))[0]
    return report


def check_table(
    root: str | os.PathLike[str],
    *,
    docs_dir: str | os.PathLike[str] | None = None,
    bounds: RewardBounds = DEFAULT_BOUNDS,
    credit_rel_tol: float = DEFAULT_CREDIT_REL_TOL,
) -> list[PartitionReport]:
    """Run the suite on every ``dt=*/hr=*`` partition under ``root``, in time order.

    A partition that cannot be read is reported as failed (``error`` set) and the walk goes on;
    a missing root or a root without partitions raises PartitionError.
    """
    return _check_paths(find_partitions(Path(root)), docs_dir, SuiteConfig(bounds, credit_rel_tol))


def _check_paths(
    paths: Iterable[Path], docs_dir: str | os.PathLike[str] | None, config: SuiteConfig
) -> list[PartitionReport]:
    with _quiet():
        session = _Session(config)
        reports = []
        for path in paths:
            label = partition_label(path)
            try:
                reports.append(session.validate(path, label))
            except PartitionError as error:
                reports.append(PartitionReport(partition=label, rows=0, error=str(error)))
        if docs_dir is not None:
            reports = _with_docs(reports, session, Path(docs_dir))
    return reports


def _with_docs(reports: list[PartitionReport], session: _Session, docs_dir: Path) -> list[PartitionReport]:
    url = session.build_docs(docs_dir)
    return [
        PartitionReport(r.partition, r.rows, r.outcomes, r.error, docs_url=url if r.error is None else None)
        for r in reports
    ]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m quality.check", description="Check ad.rewards Parquet partitions."
    )
    parser.add_argument("path", type=Path, help="table root (holding dt=*/hr=*), one partition, or one file")
    parser.add_argument("--docs", type=Path, default=None, help="write HTML Data Docs into this directory")
    parser.add_argument("--reward-min", type=float, default=RewardBounds.low)
    parser.add_argument("--reward-max", type=float, default=RewardBounds.high)
    parser.add_argument("--credit-rel-tol", type=float, default=DEFAULT_CREDIT_REL_TOL)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        config = SuiteConfig(RewardBounds(args.reward_min, args.reward_max), args.credit_rel_tol)
        path: Path = args.path
        if not path.exists():
            raise PartitionError(f"path {str(path)!r} does not exist")
        paths = [path] if is_partition(path) else find_partitions(path)
    except ValueError as error:
        print(f"quality.check: {error}", file=sys.stderr)
        return 2
    reports = _check_paths(paths, args.docs, config)
    for report in reports:
        print(report.line())
        for outcome in report.failed:
            for example in outcome.examples[:CLI_EXAMPLES]:
                print(f"    {outcome.name}: {example}")
    urls = {r.docs_url for r in reports if r.docs_url}
    if urls:
        print(f"Data Docs: {urls.pop()}")
    failed = sum(not r.success for r in reports)
    print(f"{len(reports) - failed} of {len(reports)} partition(s) OK")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
