"""The gateway-worker contract: generated gRPC/protobuf stubs (see worker.proto) and the Redis
worker-registry keys (registry_keys.py, written by hand)."""
