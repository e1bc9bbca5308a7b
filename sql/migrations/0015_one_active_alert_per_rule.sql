-- Two active NAV alerts with the same scheme, kind and threshold would notify one person twice
-- for one NAV (issue 18): a duplicate makes no sense, so the database refuses it. Duplicates
-- made before this migration are deactivated, keeping the oldest of each.
UPDATE nav_alerts a SET active = false
 WHERE active
   AND EXISTS (SELECT 1 FROM nav_alerts b
                WHERE b.active AND b.user_id = a.user_id AND b.scheme_code = a.scheme_code
                  AND b.kind = a.kind AND b.threshold = a.threshold AND b.alert_id < a.alert_id);
CREATE UNIQUE INDEX nav_alerts_one_active_rule_idx
    ON nav_alerts (user_id, scheme_code, kind, threshold) WHERE active;
