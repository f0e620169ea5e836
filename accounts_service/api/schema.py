"""OpenAPI extensions: how drf-spectacular documents our bearer tokens."""

from drf_spectacular import openapi
from drf_spectacular.extensions import OpenApiAuthenticationExtension


class BearerTokenScheme(OpenApiAuthenticationExtension):
    target_class = "accounts_service.authentication.BearerTokenAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer",
                "description": "An API token (`manage.py api_token create`); only its SHA-256 is stored."}


class AutoSchema(openapi.AutoSchema):
    """Names components after the API class too: every view nests its own ``InputSerializer`` and
    ``OutputSerializer`` (HackSoft style), which would otherwise all be called "Input" and "Output"."""

    def get_serializer_name(self, serializer, direction):
        name = super().get_serializer_name(serializer, direction)
        outer, _, _ = type(serializer).__qualname__.rpartition(".")
        return f"{outer.removesuffix('Api')}{name}" if outer else name
