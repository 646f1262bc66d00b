"""Generated gRPC/protobuf stubs for the gateway-worker contract (see worker.proto)."""
