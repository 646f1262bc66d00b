"""Lane queues at run time: admission, batch windows, budgets and dispatch to workers."""

from gateway.lanes_runtime.dispatcher import LaneDispatcher

__all__ = ["LaneDispatcher"]
