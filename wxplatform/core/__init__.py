"""The floor: plumbing every app may use (encryption, metrics emitters, backoff, bulk writes, rate-limit counters,
prefix keys, request ids, the schedule table). It imports no app."""
