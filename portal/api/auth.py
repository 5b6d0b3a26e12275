from ninja.security import HttpBearer

from portal.accounts.services import api_token_resolve


class BearerToken(HttpBearer):
    def authenticate(self, request, token):
        if not token or len(token) > 200:
            return None
        api_token = api_token_resolve(raw=token)
        if api_token is None:
            return None
        request.api_token = api_token
        return api_token.account
