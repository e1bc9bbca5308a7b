-- Idempotent SIP creation (issue 18, OWASP API6): a client that timed out retries with the same
-- `Idempotency-Key` and gets the stored response instead of a second mandate. The key row is
-- written in the transaction that creates the SIP, so a committed SIP always has its stored
-- response, and a concurrent retry waits on the key's unique index until the first commits.
-- Keys are per user and expire after 24 hours.
CREATE TABLE idempotency_keys (
    user_id      bigint      NOT NULL REFERENCES users (user_id),
    idem_key     text        NOT NULL CHECK (length(idem_key) BETWEEN 1 AND 255),
    route        text        NOT NULL,
    request_hash bytea       NOT NULL,
    status       smallint,
    response     text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, idem_key)
);
CREATE INDEX idempotency_keys_created_idx ON idempotency_keys (created_at);
