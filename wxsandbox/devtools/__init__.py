"""The development commands (`run_stack`, `release_check`, `run_wechat_sandbox`): a Django app installed only
where the sandbox is (a checkout, the tests, the benchmarks), never in the production image."""
