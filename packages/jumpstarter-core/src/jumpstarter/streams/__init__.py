"""Byte streams: the frame protocol over gRPC, copying, compression, thread bridges."""
