-- Orders other than SIP instalments (issue 36): lumpsum purchases, redemptions (by amount,
-- by units, or everything held) and switches between schemes of one fund house. PostgreSQL is
-- their system of record, as for SIPs: the API writes them `received` with the date of the NAV
-- they will get (fixed at receipt by SEBI's cut-off rule) and the instant until which they can
-- be cancelled; `orders execute --date D` executes those of NAV date D and writes the outcome
-- back. `executes_on` is the batch date whose run executes it: the NAV date, or for a liquid
-- or overnight purchase the day after (its NAV is the calendar day's before the day its money
-- counts). The columns after `cancel_before` are the execution's.
CREATE TABLE orders (
    order_id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id            bigint        NOT NULL REFERENCES users (user_id),
    kind               text          NOT NULL CHECK (kind IN ('purchase', 'redemption', 'switch')),
    scheme_code        bigint        NOT NULL REFERENCES schemes (scheme_code),
    target_scheme_code bigint        REFERENCES schemes (scheme_code),
    amount             numeric(18,2) CHECK (amount > 0),
    units              numeric(18,4) CHECK (units > 0),
    redeem_all         boolean       NOT NULL DEFAULT false,
    status             text          NOT NULL DEFAULT 'received'
                       CHECK (status IN ('received', 'executed', 'failed', 'cancelled')),
    received_at        timestamptz   NOT NULL,
    nav_date           date          NOT NULL,
    executes_on        date          NOT NULL,
    cancel_before      timestamptz   NOT NULL,
    executed_nav       numeric(18,8),
    executed_units     numeric(18,4),
    gross_amount       numeric(18,2),
    stamp_duty         numeric(18,2),
    exit_load          numeric(18,2),
    stt                numeric(18,2),
    net_amount         numeric(18,2),
    realised_gain      numeric(18,2),
    payout_date        date,
    target_nav         numeric(18,8),
    target_units       numeric(18,4),
    target_stamp_duty  numeric(18,2),
    failure            text,
    updated_at         timestamptz   NOT NULL DEFAULT now(),
    -- The shape of each kind: a purchase has an amount; a redemption or switch exactly one of
    -- amount, units or everything; only a switch has a target.
    CHECK (kind <> 'purchase' OR (amount IS NOT NULL AND units IS NULL AND NOT redeem_all
                                  AND target_scheme_code IS NULL)),
    CHECK (kind = 'purchase' OR ((amount IS NOT NULL)::int + (units IS NOT NULL)::int + redeem_all::int = 1)),
    CHECK ((kind = 'switch') = (target_scheme_code IS NOT NULL))
);
CREATE INDEX orders_user_idx ON orders (user_id, order_id DESC);
CREATE INDEX orders_executes_on_idx ON orders (executes_on);

-- One row per lot a redemption or switch-out consumed, first in first out (the warehouse's
-- `realized_gains`, for the API's capital-gains statement).
CREATE TABLE realized_gains (
    order_id         bigint        NOT NULL REFERENCES orders (order_id),
    seq              integer       NOT NULL,
    user_id          bigint        NOT NULL,
    scheme_code      bigint        NOT NULL,
    isin             text,
    tax_class        text          NOT NULL CHECK (tax_class IN ('equity', 'debt', 'other')),
    term             text          NOT NULL CHECK (term IN ('short', 'long')),
    fy               text          NOT NULL,
    purchase_date    date          NOT NULL,
    purchase_nav     numeric(18,8) NOT NULL,
    units            numeric(18,4) NOT NULL,
    purchase_value   numeric(18,2) NOT NULL,
    stamp_duty       numeric(18,2) NOT NULL,
    sale_date        date          NOT NULL,
    sale_nav         numeric(18,8) NOT NULL,
    gross_sale_value numeric(18,2) NOT NULL,
    exit_load        numeric(18,2) NOT NULL,
    stt              numeric(18,2) NOT NULL,
    cost             numeric(18,2) NOT NULL,
    gain             numeric(18,2) NOT NULL,
    PRIMARY KEY (order_id, seq)
);
CREATE INDEX realized_gains_user_fy_idx ON realized_gains (user_id, fy, sale_date);
