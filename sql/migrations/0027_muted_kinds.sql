-- Unsubscribing from one kind of message (issue 37): the kinds a person no longer wants on
-- their own channels (e-mail, SMS, push). The platform webhook, which feeds the app's own
-- list, still gets every notification, and the notification itself stays readable in the app.
ALTER TABLE notification_preferences ADD COLUMN muted_kinds text[] NOT NULL DEFAULT '{}';
