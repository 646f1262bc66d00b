"""`laneway review`: per-endpoint latency review tables rebuilt from trace files."""

from laneway.review.endpoint_review import EndpointReview, review
from laneway.review.request_row import RequestRow, request_rows

__all__ = ["EndpointReview", "RequestRow", "request_rows", "review"]
