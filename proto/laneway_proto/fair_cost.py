"""How fair queuing prices a token, on both sides of the wire.

The gateway orders what it holds (gateway/lanes_runtime/fair_share.py) and the worker the
queue that forms in it (workers/engine/tenant_shares.py): one price, or a tenant's
service would count differently in the two queues. Written by hand, like error_codes.py.
"""

from __future__ import annotations

# One prompt token, in generated tokens: prefill is batched, decode costs a step per token.
PROMPT_TOKEN_COST = 0.25
