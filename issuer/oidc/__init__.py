"""Signing users in from browser and native apps (OpenID Connect on top of `issuer.oauth`):

- `authorize`: the authorization endpoint's decisions (validate, sign in, consent, code);
- `sessions`: the browser's session at the issuer (single sign-on), in the database;
- `consents`: what a user allowed a client, remembered per scope set;
- `id_token_hints`: an ID token of ours sent back to name its user (at `/authorize`, `/logout`);
- `userinfo`: the UserInfo endpoint; `logout`: RP-initiated logout.
"""
