"""The round as a pipeline: sample -> dispatch -> collect -> aggregate -> evaluate ->
observers, driven by a scheduler (server/pipeline/scheduler.py). Each stage is a small
object with one job, so a deadline or asynchronous scheduler, or multi-client dispatch,
can reuse the others unchanged (docs/ARCHITECTURE.md, "One round")."""
