"""The admin API (FastAPI): agencies, policies, schemas, dead letters, audit, health, metrics.

>>> app = create_app(admin_service_connection, ApiSettings(tokens_path=Path("tokens.json")))
>>> uvicorn.run(app)        # state is loaded from Kafka on start

Tokens are created with :class:`TokenStore` (``liaison api token create``) or by an
admin through ``POST /tokens``; see ``docs/api.md``.
"""

from bus.api._app import REGISTRY_PREFIX, create_app
from bus.api._auth import Principal, TokenInfo, TokenStore, parse_role
from bus.api._service import AdminService, ApiSettings

__all__ = [
    "REGISTRY_PREFIX",
    "AdminService",
    "ApiSettings",
    "Principal",
    "TokenInfo",
    "TokenStore",
    "create_app",
    "parse_role",
]
