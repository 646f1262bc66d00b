"""Why a worker refused a request: codes both sides agree on, sent beside the gRPC status.

A worker refusing a request (INVALID_ARGUMENT) names the reason in the trailing metadata
entry ERROR_CODE_KEY; the gateway puts it in the OpenAI error body's `code`, so clients
(and the gateway's OpenAPI description, which lists the rules JSON Schema cannot state)
can tell a model limit from a malformed request. Written by hand, like registry_keys.py.
"""

from __future__ import annotations

ERROR_CODE_KEY = "laneway-error-code"

INVALID_REQUEST = "invalid_request"  # anything without a more precise code
CONTEXT_LENGTH_EXCEEDED = "context_length_exceeded"  # prompt + max_tokens over the model's context or KV pool
TOKEN_OUT_OF_VOCABULARY = "token_id_out_of_vocabulary"  # a prompt or logit_bias token id the model lacks
CHAT_TEMPLATE_ERROR = "chat_template_error"  # the model's chat template refused the messages
INVALID_CONSTRAINT = "invalid_constraint"  # a JSON schema, regex or grammar the grammar engine refuses
