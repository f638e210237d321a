"""RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0): whether the browser's session
may end at once, and where to send the browser after it ended.

The `id_token_hint` names the client (its `aud`) and the user (its `sub`); it must be an ID
token this issuer signed, though it may have expired (one whose signing key has retired since
cannot be checked any more: it names its client, for the redirect, but no user). A
`post_logout_redirect_uri` is followed only when it is registered for that client, exactly,
and the client is not disabled; otherwise the issuer shows its own signed-out page.
Section 2 requires asking the user when the hint is missing, names someone else, or does not
belong to the current session: another site, or an app holding an old ID token of the user,
could otherwise sign the user out by sending the browser here. A hint issued to another client
than the request's `client_id` fails validation and is not used (sections 2 and 4).
"""

from issuer.oauth.clients import CachedClients
from issuer.oauth.redirect_uris import with_parameters
from issuer.oidc.id_token_hints import IdTokenHint, IdTokenHints
from issuer.oidc.sessions import SignedIn


class Logout:
    def __init__(self, hints: IdTokenHints, clients: CachedClients):
        self._hints = hints
        self._clients = clients

    def read_hint(
        self, id_token_hint: str | None, client_id: str | None = None
    ) -> IdTokenHint | None:
        """The hint if it is an ID token of ours (its key may have retired since) issued to
        `client_id`, when the request names one; None for anything else. Section 2: the OP
        "MUST verify" that the two match; section 4: a hint that fails it is not used at all,
        neither to end the session unasked nor to choose where the browser goes after."""
        hint = self._hints.read_for_logout(id_token_hint)
        if hint is None or (client_id is not None and client_id != hint.client_id):
            return None
        return hint

    @staticmethod
    def may_end_at_once(hint: IdTokenHint | None, signed_in: SignedIn | None) -> bool:
        """Whether the hint proves the request is about this session (section 2): an ID token
        of its user issued in it, whose `auth_time` is the session's sign-in (every sign-in
        starts a new session; one of the user's other sessions, in another browser, signed
        in at another time). Clocks of other replicas play no part."""
        return (
            hint is not None
            and signed_in is not None
            and hint.subject == str(signed_in.user_id)
            and hint.auth_time == signed_in.auth_time
        )

    async def redirect_after(
        self,
        hint: IdTokenHint | None,
        post_logout_redirect_uri: str | None,
        state: str | None,
    ) -> str | None:
        """The registered URI to redirect to (with `state`), or None for the issuer's page."""
        if not post_logout_redirect_uri or hint is None:
            return None
        client = await self._clients.get(hint.client_id)
        # A disabled client's site is not trusted any more (as /authorize refuses it).
        if client is None or client.disabled:
            return None
        if post_logout_redirect_uri not in client.post_logout_redirect_uri_list:
            return None
        return with_parameters(post_logout_redirect_uri, {"state": state})
