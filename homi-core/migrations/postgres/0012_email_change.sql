-- A new email address takes effect once a link sent to it is followed: it
-- waits in `pending_email`. A confirmation token names the address it proves.
ALTER TABLE homi_auth_users ADD COLUMN pending_email text;
ALTER TABLE homi_auth_one_time_tokens ADD COLUMN email_normalized text;
