-- The limits `POST /v1/users/{id}/sips` checks. AMFI's files do not carry them: they default to
-- the platform floor (₹100, no maximum) and operators set a scheme's own from its SID.
ALTER TABLE schemes
    ADD COLUMN sip_min_amount numeric(18,2) NOT NULL DEFAULT 100 CHECK (sip_min_amount >= 100),
    ADD COLUMN sip_max_amount numeric(18,2) CHECK (sip_max_amount IS NULL OR sip_max_amount >= sip_min_amount);
-- A user's alerts and SIPs are listed by user; notifications page by id within a user.
CREATE INDEX notifications_user_id_idx ON notifications (user_id, notification_id DESC);
