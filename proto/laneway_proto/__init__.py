"""The gateway-worker contract: generated gRPC/protobuf stubs (see worker.proto), the Redis
worker-registry keys (registry_keys.py) and the codes of refused requests (error_codes.py),
the last two written by hand."""
