-- A user signs in with a Supabase or Auth0 token and is provisioned on their first call
-- (issue 16): the profile keeps what the token says of them.
ALTER TABLE users ADD COLUMN email text, ADD COLUMN phone text;
