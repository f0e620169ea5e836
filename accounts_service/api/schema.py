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


ERROR = {"type": "object", "required": ["message", "extra"],
         "properties": {"message": {"type": "string"}, "extra": {"type": "object", "additionalProperties": {}}}}
_ERRORS = {"400": "Invalid input.", "401": "Missing or invalid credentials.", "403": "Not allowed.",
           "404": "No such object (or another team's).", "406": "Not acceptable.",
           "409": "Conflicts with the current state.", "415": "Unsupported media type.", "429": "Throttled."}


def error_responses(result, generator, request, public):
    """Document the one error shape on every operation, with the statuses it can answer."""
    result.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR
    content = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    for path, item in result.get("paths", {}).items():
        for method, operation in item.items():
            if method not in {"get", "post", "put", "patch", "delete"}:
                continue
            codes = ["400", "401", "403", "406", "429"]
            if "{" in path:
                codes.append("404")
            if method != "get":
                codes.append("409")
            if "requestBody" in operation:
                codes.append("415")
            for code in codes:
                operation["responses"].setdefault(code, {"description": _ERRORS[code], "content": content})
    return result
