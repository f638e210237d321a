"""Signing keys: the lifecycle model, the stores that keep it, and the ring that signs.

- `model`: states next/active/retiring/retired and the rotation rules (pure; takes `now`);
- `store`: what every backend shares (generate, rotate, revoke, load), with `files` (a keys
  directory) and `database` (tables shared by replicas) as the two backends;
- `ring`: the loaded set a running issuer signs with, reloaded when the store changes;
- `jwks`: the published JWKS document; `events`: change signals over Redis;
- `report`: the key scripts' human-readable status table.
"""
