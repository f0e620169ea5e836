"""OpenAPI extensions: how drf-spectacular documents our bearer tokens, strict inputs, keys and errors."""

from drf_spectacular import openapi
from drf_spectacular.extensions import OpenApiAuthenticationExtension

from accounts_service.api.utils import (
    ACCOUNT_KEY_PATTERN,
    USER_KEY_PATTERN,
    AcceptHeaderNegotiation,
    StrictInputSerializer,
)

# Path parameters by name: public nkeys (the CRC a pattern cannot check is checked by the lookup: 404), and
# database ids (BigAutoField).
PATH_PARAMETERS = {
    "account_pk": {"pattern": ACCOUNT_KEY_PATTERN},
    "user_pk": {"pattern": USER_KEY_PATTERN},
    "export_id": {"minimum": 1, "maximum": 2**63 - 1},
    "import_id": {"minimum": 1, "maximum": 2**63 - 1},
    "activation_id": {"minimum": 1, "maximum": 2**63 - 1},
    "team_id": {"minimum": 1, "maximum": 2**63 - 1},
    "member_id": {"minimum": 1, "maximum": 2**63 - 1},
    "prefix": {"pattern": r"^nct_[A-Za-z0-9_-]{6}$"},
}


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

    def _map_basic_serializer(self, serializer, direction):
        schema = super()._map_basic_serializer(serializer, direction)
        if isinstance(serializer, StrictInputSerializer):
            schema["additionalProperties"] = False  # unknown keys are a 400 (StrictInputSerializer)
            if schema.get("description") == StrictInputSerializer.__doc__:
                del schema["description"]  # inherited from the base class: says nothing about this input
        return schema

    def _resolve_path_parameters(self, variables):
        parameters = super()._resolve_path_parameters(variables)
        for parameter in parameters:
            parameter["schema"].update(PATH_PARAMETERS.get(parameter["name"], {}))
        return parameters

    def _get_format_parameters(self):
        if getattr(self.view, "content_negotiation_class", None) is AcceptHeaderNegotiation:
            return []  # ?format= is ignored on these views
        return super()._get_format_parameters()

    def _get_pagination_parameters(self):
        # Our list views are APIViews returning a paginated envelope; drf-spectacular only sees lists of
        # GenericAPIViews, so a GET of a view that names its paginator documents limit/offset here.
        if self.method == "GET" and getattr(self.view, "pagination_class", None):
            return self._get_paginator().get_schema_operation_parameters(self.view)
        return super()._get_pagination_parameters()


ERROR = {"type": "object", "required": ["message", "code", "extra"],
         "properties": {"message": {"type": "string"},
                        "code": {"type": "string", "description": "Stable and machine-readable, e.g. "
                                 "`account_name_taken`; the kind (`invalid`, `not_found`, ...) when nothing finer."},
                        "extra": {"type": "object", "additionalProperties": {}}}}
_ERRORS = {"400": "Invalid input.", "401": "Missing or invalid credentials.", "403": "Not allowed.",
           "404": "No such object (or another team's).", "406": "Not acceptable.",
           "409": "Conflicts with the current state.", "415": "Unsupported media type.", "429": "Throttled."}


_OBJECT_QUERY = {"account", "region"}  # query parameters that name an object which may not exist


def error_responses(result, generator, request, public):
    """Document the one error shape on every operation, with the statuses it can answer."""
    result.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR
    content = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    for path, item in result.get("paths", {}).items():
        for method, operation in item.items():
            if method not in {"get", "post", "put", "patch", "delete"}:
                continue
            codes = ["400", "401", "403", "406", "429"]
            names_object = any(p.get("in") == "query" and p.get("name") in _OBJECT_QUERY
                               for p in operation.get("parameters", []))
            if "{" in path or method != "get" or names_object:  # a path, body or query object (connect's account)
                codes.append("404")
            if method != "get":
                codes.append("409")
            if "requestBody" in operation:
                codes.append("415")
            for code in codes:
                operation["responses"].setdefault(code, {"description": _ERRORS[code], "content": content})
    return result
