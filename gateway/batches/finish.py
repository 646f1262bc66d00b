"""Ending a batch: answer what never ran, write the output and error files, set the status.

Any gateway may finish a batch, and two may try at once or one may die half-way: every
step is safe to repeat. Unanswered lines get their batch_expired / batch_cancelled answer
through the same answer-once script as real results; file ids are derived from the batch
id, so a repeated write replaces instead of adding files; and the final write (files,
status, cleanup) is one MULTI guarded by WATCH on the batch, so it happens once.
"""

from __future__ import annotations

import json
import time

from redis.asyncio.client import Pipeline

from gateway import redis_types
from gateway.batches import keys
from gateway.batches.batch_store import BatchStore
from gateway.batches.files import FileStore
from gateway.batches.item_queue import Answer
from gateway.batches.output import CANCELLED, EXPIRED, unrun_answer
from gateway.batches.records import BatchRecord, BatchStatus, FileRecord

_UNRUN = {BatchStatus.CANCELLED: CANCELLED, BatchStatus.EXPIRED: EXPIRED}
_FROM = {
    BatchStatus.COMPLETED: (BatchStatus.FINALIZING,),
    BatchStatus.CANCELLED: (BatchStatus.CANCELLING,),
    BatchStatus.EXPIRED: (BatchStatus.VALIDATING, BatchStatus.IN_PROGRESS),
}


async def finish(store: BatchStore, batch: BatchRecord, outcome: BatchStatus,
                 unrun: tuple[str, str] | None = None) -> bool:
    """Move the batch to `outcome` with its files; False if its status had moved elsewhere.
    `unrun`: the (code, message) of lines that never ran, when not the outcome's own."""
    if outcome not in _FROM:
        raise ValueError(f"{outcome} is not an outcome a running batch can end in")
    ok_lines, error_lines = await _lines(store, batch, outcome, unrun)
    now = int(time.time())
    files = [(FileRecord(keys.output_file_id(batch.id, kind), batch.tenant, "batch_output",
                         f"{batch.id}_{kind}.jsonl", len(content.encode()), now, now + store.file_ttl_s), content)
             for kind, content in (("output", _jsonl(ok_lines)), ("errors", _jsonl(error_lines))) if content]
    fields = {"status": outcome.value, f"{outcome.value}_at": str(now)}
    for record, _ in files:
        fields["output_file_id" if record.id.endswith("-output") else "error_file_id"] = record.id

    def writes(pipe: Pipeline) -> None:
        for record, content in files:
            FileStore.write(pipe, record, content)
        pipe.hset(keys.batch_key(batch.id), mapping=redis_types.fields(fields))
        pipe.srem(keys.ACTIVE, batch.id)
        pipe.delete(keys.items_key(batch.id), keys.results_key(batch.id), keys.validator_key(batch.id))

    return await store.write_if_status(batch.id, _FROM[outcome], writes)


async def _lines(store: BatchStore, batch: BatchRecord, outcome: BatchStatus,
                 unrun: tuple[str, str] | None) -> tuple[list[str], list[str]]:
    """Every input line's answer in input order, split by file; unanswered ones answered now."""
    ok_lines: list[str] = []
    error_lines: list[str] = []
    unrun = unrun or _UNRUN.get(outcome)
    async for page in store.items.items(batch.id):
        answers = await store.items.answers(batch.id, [item.custom_id for item in page])
        for item, answer in zip(page, answers):
            if answer is None:
                if unrun is None:  # Redis lost an answer its counts include: retried next pass, logged
                    raise RuntimeError(f"{batch.id}: line {item.line} has no answer, yet the batch is finalizing")
                answer = await _answer_unrun(store, batch.id, item.custom_id, unrun)
            (ok_lines if answer.ok else error_lines).append(json.dumps(answer.line))
    return ok_lines, error_lines


async def _answer_unrun(store: BatchStore, batch_id: str, custom_id: str, reason: tuple[str, str]) -> Answer:
    answer = unrun_answer(custom_id, reason)
    if await store.items.record(batch_id, custom_id, answer):
        return answer
    found = (await store.items.answers(batch_id, [custom_id]))[0]  # a runner answered it meanwhile
    if found is None:
        raise RuntimeError(f"{batch_id}: {custom_id} neither recorded nor answered")
    return found


def _jsonl(lines: list[str]) -> str:
    return "".join(line + "\n" for line in lines)
