-- What a provider says after it accepted a message (issue 37): its id for the message
-- (Exotel's SmsSid) and its delivery report (sent to the handset, failed, blocked by DND),
-- which arrives later on a signed callback to the API.
ALTER TABLE notification_deliveries
    ADD COLUMN provider_ref  text,
    ADD COLUMN report_status text,
    ADD COLUMN report_detail text,
    ADD COLUMN reported_at   timestamptz;

-- A notification is delivered when every channel is, dead when none is left to try and one
-- died. One definition for the dispatcher (after each batch) and the API (after a delivery
-- report turns a delivery dead).
CREATE FUNCTION sipline_roll_up_notifications(ids bigint[]) RETURNS void
LANGUAGE sql AS $$
    UPDATE notifications n SET status = s.status,
           delivered_at = CASE WHEN s.status = 'delivered' THEN now() END
      FROM (SELECT notification_id, CASE
                     WHEN bool_and(status = 'delivered') THEN 'delivered'
                     WHEN bool_or(status IN ('pending', 'delivering')) THEN 'delivering'
                     ELSE 'dead' END AS status
              FROM notification_deliveries WHERE notification_id = ANY(ids) GROUP BY notification_id) s
     WHERE n.notification_id = s.notification_id AND n.status <> s.status
$$;

-- Which push service a person's device token belongs to: Firebase Cloud Messaging (Android,
-- and iOS apps that register through Firebase) or Apple's APNs directly.
ALTER TABLE notification_preferences
    ADD COLUMN push_platform text NOT NULL DEFAULT 'fcm' CHECK (push_platform IN ('fcm', 'apns'));
