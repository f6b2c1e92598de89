-- External identities (OpenID Connect issuer + subject) linked to local users. A token of
-- an external identity provider signs in as the user its (iss, sub) is linked to; the
-- e-mail claim only matters when the pair is seen for the first time, and links to an
-- existing account only when the provider marked it verified (email_verified).
CREATE TABLE user_identities (
  issuer     TEXT NOT NULL,
  subject    TEXT NOT NULL,
  user_id    TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  email      TEXT NOT NULL,
  created_at TEXT NOT NULL,
  PRIMARY KEY (issuer, subject)
);
CREATE INDEX user_identities_user ON user_identities (user_id, issuer);

-- Users created from external tokens before this table existed keep the identity that
-- created them (recorded in the audit log as user.create_external {issuer, subject}).
INSERT INTO user_identities (issuer, subject, user_id, email, created_at)
SELECT json_extract(a.details, '$.issuer'), json_extract(a.details, '$.subject'), a.subject_id, u.email, a.at
FROM audit_log a JOIN users u ON u.id = a.subject_id
WHERE a.action = 'user.create_external' AND json_extract(a.details, '$.issuer') IS NOT NULL AND json_extract(a.details, '$.subject') IS NOT NULL
ON CONFLICT (issuer, subject) DO NOTHING;
