-- Systematic withdrawal and transfer plans (issue 36). An SWP redeems `amount` from a scheme
-- on `plan_day` of each month; an STP switches `amount` into `target_scheme_code`, of the
-- same fund house. Each instalment becomes an order (`orders.plan_id`, `plan_due_date`)
-- placed by `orders execute` for its NAV date and executed like any other order; an
-- instalment the source cannot pay stops the plan (`status` 'stopped', `stopped_reason`).
--
-- A plan is live from `active_since` (created or resumed) until `inactive_since` (paused,
-- cancelled or stopped). The run of D places the instalments of plans live at D's cut-off, so
-- re-running D places the same ones whatever was done to the plan since.
CREATE TABLE plans (
    plan_id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id            bigint        NOT NULL REFERENCES users (user_id),
    kind               text          NOT NULL CHECK (kind IN ('swp', 'stp')),
    scheme_code        bigint        NOT NULL REFERENCES schemes (scheme_code),
    target_scheme_code bigint        REFERENCES schemes (scheme_code),
    amount             numeric(18,2) NOT NULL CHECK (amount > 0),
    plan_day           smallint      NOT NULL CHECK (plan_day BETWEEN 1 AND 28),
    start_date         date          NOT NULL,
    end_date           date          CHECK (end_date >= start_date),
    status             text          NOT NULL DEFAULT 'active'
                       CHECK (status IN ('active', 'paused', 'cancelled', 'stopped')),
    stopped_reason     text,
    created_at         timestamptz   NOT NULL,
    active_since       timestamptz   NOT NULL,
    inactive_since     timestamptz,
    CHECK ((kind = 'stp') = (target_scheme_code IS NOT NULL)),
    CHECK ((status = 'active') = (inactive_since IS NULL)),
    CHECK ((status = 'stopped') = (stopped_reason IS NOT NULL))
);
CREATE INDEX plans_user_idx ON plans (user_id, plan_id);

ALTER TABLE orders ADD COLUMN plan_id bigint REFERENCES plans (plan_id),
                   ADD COLUMN plan_due_date date,
                   ADD CHECK ((plan_id IS NULL) = (plan_due_date IS NULL));
-- One order per instalment: placing is idempotent.
CREATE UNIQUE INDEX orders_plan_instalment_idx ON orders (plan_id, plan_due_date)
    WHERE plan_id IS NOT NULL;
