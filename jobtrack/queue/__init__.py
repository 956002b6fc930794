"""The queue: the Python App and its tasks, the worker that runs them, the job context
(phases, progress, pause and cancel checkpoints), the stall reaper and retention."""
