"""HTTP plumbing shared by the resources: request ids and headers, JSON in and out, problem
rendering, the operation decorators, authentication, limits, idempotency, pagination and the
spec builder. The rest of `api` (the core) knows no request, no Resource and no schema."""
