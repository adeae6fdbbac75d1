-- requests_queued (0002) predates the conveyor, which claims through requests_claim (0003) and
-- assigns sources through requests_unsourced; nothing reads it, and every request a rule
-- creates paid for it (a 100,000-file rule with two copies writes 200,000 requests).
drop index if exists requests_queued;
