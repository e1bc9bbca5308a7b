-- Which service a delivery's last attempt went to (issue 37 §6): `webhook`, `smtp`, `exotel`,
-- `sms_gateway`, `fcm`, `apns` or `push_gateway`, so `notify stats` and the dashboard show
-- queue depth, failures and providers' delivery reports by provider, not only by channel.
ALTER TABLE notification_deliveries ADD COLUMN provider text;
