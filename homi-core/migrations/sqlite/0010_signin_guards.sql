-- Failed sign-ins are counted under several keys, not the email alone: an
-- account, an (account, client network) pair, a client network. A lock an
-- earlier version set on an email becomes that account's.
ALTER TABLE homi_auth_signin_failures RENAME COLUMN email_digest TO guard_key;
UPDATE homi_auth_signin_failures SET guard_key = 'account:' || guard_key;
