"""Soak run (benchmark tier, not CI): many consecutive snapshots of the four tables with random
changes, their S3 events delivered in random order with duplicates; `verify` must pass at the end.

    python -m bench.soak [--snapshots 50] [--seed 1]
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from snapcdc.config import load_config
from snapcdc.lake.layout import Layout, snapshot_id
from snapcdc.lake.store import S3Store
from snapcdc_dev.demo import BUCKET, FIRST_RUN, load_handler, local_stack
from snapcdc_dev.events import LocalLambdaContext, s3_object_created_event, scheduled_event
from snapcdc_dev.sample_data import LoyaltyDataset


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--snapshots", type=int, default=50)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    config = load_config()
    rnd = random.Random(args.seed)
    dataset = LoyaltyDataset(seed=args.seed, clients=1000, transactions=2000)
    with (
        tempfile.TemporaryDirectory() as work,
        open(Path(work) / "lambda.log", "w") as log,
        local_stack(Path(work) / "tmp", config.dataset, log) as (aws, kaggle),
    ):
        # Loaded in the Lambda-like environment: Powertools reads it (service name, log stream) at import.
        extract, cdc = load_handler("extract"), load_handler("cdc")
        from snapcdc.ops.verify import verify

        store = S3Store(aws.client("s3"), BUCKET, Layout())
        pending: list[str] = []
        started = time.perf_counter()
        for index in range(args.snapshots):
            if index:
                dataset.advance()
            kaggle.publish(config.dataset, dataset.files())
            moment = FIRST_RUN + timedelta(hours=4 * index)
            extract.lambda_handler(scheduled_event(moment), LocalLambdaContext("snapcdc-extract"))
            snap = snapshot_id(moment)
            pending += [k for k in store.list_keys("raw/") if f"snapshot={snap}/" in k and k.endswith(".csv")]
            # Deliver a random part of what is pending, shuffled, some twice.
            rnd.shuffle(pending)
            cut = rnd.randint(0, len(pending))
            batch, pending = pending[:cut], pending[cut:]
            for key in batch + rnd.sample(batch, k=len(batch) // 4):
                cdc.lambda_handler(s3_object_created_event(BUCKET, [(key, 1, "e")]), LocalLambdaContext("c"))
        for key in pending:
            cdc.lambda_handler(s3_object_created_event(BUCKET, [(key, 1, "e")]), LocalLambdaContext("c"))
        elapsed = time.perf_counter() - started
        objects = sum(1 for _ in store.list_keys(""))
        results = verify(store, list(config.tables))
    for result in results:
        print(result.line())
    print(
        f"soak: {args.snapshots} snapshots, {objects} objects in the bucket, "
        f"{elapsed:.1f} s total, {elapsed / args.snapshots:.2f} s per snapshot"
    )
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
