-- A scheme's order terms where its AMFI category's defaults are wrong (issue 36), set by
-- `sipline schemes rules` (its extended CSV): the exit-load schedule (`365:100;730:50`, days held
-- at most : basis points), the tax class, the business days from NAV date to payout, and the
-- smallest redemption. NULL keeps the category's default (`pipeline::orders::SchemeTerms`).
ALTER TABLE schemes
    ADD COLUMN exit_load      text,
    ADD COLUMN tax_class      text CHECK (tax_class IN ('equity', 'debt', 'other')),
    ADD COLUMN payout_days    integer CHECK (payout_days BETWEEN 1 AND 3),
    ADD COLUMN min_redemption numeric(18,2) CHECK (min_redemption > 0);
