from __future__ import annotations

import pyarrow as pa
from tqdm.auto import tqdm

from pipeline.runners.base import Runner, concat, split_batches
from pipeline.stage import Stage


class LocalRunner(Runner):
    """In-process: one worker, set up once, batches in order, a progress bar over rows."""

    name = "local"

    def map(self, stage: Stage, table: pa.Table) -> pa.Table:
        batches = split_batches(table, stage.resources.batch_size)
        outputs = []
        with tqdm(total=table.num_rows, desc=stage.name, unit="row", disable=None) as bar:
            if batches:
                stage.ensure_setup()
            for batch in batches:
                outputs.append(stage.process_batch(batch))
                bar.update(batch.num_rows)
        return concat(outputs, stage)
